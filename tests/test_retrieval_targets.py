"""Retrieval targets (Tatoeba, BUCC, LAReQA, Mewsli-X) on the real slices with the tiny model:
loading, the identity checks that do not depend on model quality, embeddings and re-scoring."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stilts.errors import StiltsError
from stilts.model.embeddings import EmbeddingSettings, SentenceEmbedder
from stilts.cli.score import main as score_main
from stilts.tasks import get_task
from stilts.tasks.common.retrieval_formats import read_id_pairs, read_id_sentences, read_sentences
from stilts.tasks.common.sources import find_files

TATOEBA = {"de": "deu", "fr": "fra", "es": "spa", "zh": "cmn", "ar": "ara", "ru": "rus", "ja": "jpn", "hi": "hin",
           "sw": "swh", "th": "tha"}


@pytest.fixture(scope="module")
def embed(tiny_model_dir):
    from stilts.model.encoder import load_encoder, load_tokenizer

    return SentenceEmbedder(load_encoder(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir)),
                            EmbeddingSettings(layer=2, batch_size=256), device="cpu")


def test_tatoeba_real_files_are_found_and_aligned(shared_data, tmp_path) -> None:
    (tmp_path / "tatoeba").mkdir()
    (tmp_path / "tatoeba" / "v1").symlink_to(shared_data / "tatoeba" / "v1")
    spec = get_task("tatoeba")
    for language, iso3 in TATOEBA.items():
        source, english = find_files(spec, "test", language, tmp_path)
        assert source.name == f"tatoeba.{iso3}-eng.{iso3}" and english.name == f"tatoeba.{iso3}-eng.eng"
        assert len(read_sentences(source)) == len(read_sentences(english)) == {"sw": 390, "th": 548}.get(language, 1000)
    assert read_sentences(find_files(spec, "test", "de", tmp_path)[1])[0] == "Mary said she didn't know where Tom was."


def test_bucc_real_dev_files(shared_data) -> None:
    ids, sentences = read_id_sentences(shared_data / "bucc2018/zh-en.dev.zh")
    assert len(ids) == 8624 and ids[0] == "zh-000000001"
    assert len(read_id_sentences(shared_data / "bucc2018/zh-en.dev.en")[0]) == 13589
    gold = read_id_pairs(shared_data / "bucc2018/zh-en.dev.gold")
    assert len(gold) == 257 and ("zh-000000057", "en-000008530") in gold


def test_tatoeba_is_100_when_the_other_side_is_english(shared_data, tmp_path, embed) -> None:
    """Replacing German by the English sentences themselves: every English sentence finds itself,
    except exact duplicate sentences, whose ties may resolve to the twin."""
    english = shared_data / "tatoeba/v1/tatoeba.deu-eng.eng"
    (tmp_path / "tatoeba").mkdir()
    shutil.copy(english, tmp_path / "tatoeba" / "tatoeba.deu-eng.eng")
    shutil.copy(english, tmp_path / "tatoeba" / "tatoeba.deu-eng.deu")
    [(metrics, suffix, predictions)] = get_task("tatoeba").retrieve(embed, tmp_path, ["de"], "test").values()
    lines = read_sentences(english)
    unique = sum(count == 1 for count in Counter(lines).values())
    assert metrics["accuracy"] >= 100 * unique / len(lines) and metrics["accuracy_reverse"] >= 100 * unique / len(lines)
    assert suffix == ".tsv" and len(predictions.splitlines()) == len(lines)


def test_bucc_is_100_when_the_other_side_is_english(shared_data, tmp_path, embed) -> None:
    """Each gold Chinese sentence replaced by its English partner: mining finds exactly the gold pairs."""
    english_ids, english = read_id_sentences(shared_data / "bucc2018/zh-en.dev.en")
    text_of = dict(zip(english_ids, english))
    counts = Counter(sentence.strip() for sentence in english)
    gold = sorted(p for p in read_id_pairs(shared_data / "bucc2018/zh-en.dev.gold") if counts[text_of[p[1]].strip()] == 1)
    root = tmp_path / "bucc2018"
    root.mkdir()
    for split in ("dev", "test"):
        (root / f"zh-en.{split}.zh").write_text("".join(f"{z}\t{text_of[e]}\n" for z, e in gold), encoding="utf-8")
        (root / f"zh-en.{split}.en").symlink_to(shared_data / "bucc2018/zh-en.dev.en")
        (root / f"zh-en.{split}.gold").write_text("".join(f"{z}\t{e}\n" for z, e in gold), encoding="utf-8")
    [(metrics, _, mined)] = get_task("bucc").retrieve(embed, tmp_path, ["zh"], "test").values()
    assert metrics["f1"] == pytest.approx(100.0) and metrics["precision"] == pytest.approx(100.0)
    assert len(mined.splitlines()) == len(gold)


def test_bucc_without_dev_gold_says_what_is_missing(tmp_path, embed) -> None:
    root = tmp_path / "bucc2018"
    root.mkdir()
    for split in ("dev", "test"):
        (root / f"de-en.{split}.de").write_text("de-1\tHallo\n", encoding="utf-8")
        (root / f"de-en.{split}.en").write_text("en-1\tHello\n", encoding="utf-8")
    with pytest.raises(StiltsError, match="de-en.dev.gold"):
        get_task("bucc").retrieve(embed, tmp_path, ["de"], "test")


def test_lareqa_on_real_xquad_r(shared_data, tmp_path, embed) -> None:
    (tmp_path / "lareqa").mkdir()
    (tmp_path / "lareqa" / "xquad-r").symlink_to(shared_data / "lareqa_xquad_r" / "xquad-r")
    results = get_task("lareqa").retrieve(embed, tmp_path, ["en", "de", "es", "zh"], "test")
    for language, (metrics, suffix, rankings) in results.items():
        assert 0.0 < metrics["map@20"] < 100.0
        ranked = json.loads(rankings)
        assert len(ranked) == 1190 and all(len(r) == 20 for r in ranked.values())
        # The pool holds the sentences of all four languages.
        assert {c.split(":")[0] for r in list(ranked.values())[:50] for c in r} <= {"en", "de", "es", "zh"}
    assert suffix == ".json"


def test_embeddings_ignore_padding_and_are_unit_length(embed) -> None:
    alone = embed(["A short sentence."])
    batched = embed(["A short sentence.", "A much longer sentence that forces padding on the short one in its batch."])
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert np.allclose(alone[0], batched[0], atol=1e-5)


def test_embedding_settings_are_checked(tiny_model_dir) -> None:
    from stilts.model.encoder import load_encoder, load_tokenizer

    encoder, tokenizer = load_encoder(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    with pytest.raises(StiltsError, match="layer 9 does not exist"):
        SentenceEmbedder(encoder, tokenizer, EmbeddingSettings(layer=9))
    with pytest.raises(StiltsError, match="pooling"):
        SentenceEmbedder(encoder, tokenizer, EmbeddingSettings(layer=1, pooling="max"))
    cls = SentenceEmbedder(encoder, tokenizer, EmbeddingSettings(layer=1, pooling="cls"), device="cpu")
    assert cls(["x", "y z"]).shape == (2, encoder.config.hidden_size)


@pytest.mark.parametrize("task,gold,prediction,expected", [
    ("tatoeba", "0\n1\n2\n3\n", "0\n2\n2\n3\n", {"accuracy": 75.0}),
    ("bucc", "de-1\ten-5\nde-2\ten-7\n", "de-1\ten-5\nde-3\ten-9\n", {"f1": 50.0, "precision": 50.0, "recall": 50.0}),
    ("lareqa", '{"q1": ["a", "b"], "q2": ["c"]}', '{"q1": ["x", "a", "b"], "q2": ["c"]}',
     {"map@20": 100 * ((1 / 2 + 2 / 3) / 2 + 1) / 2}),
    ("mewslix", '{"m1": ["Q1"], "m2": ["Q2"]}', '{"m1": ["Q3", "Q1"], "m2": ["Q9"]}', {"map@20": 25.0}),
])
def test_score_cli_reads_retrieval_files(task, gold, prediction, expected, tmp_path, capsys) -> None:
    (tmp_path / "gold").write_text(gold, encoding="utf-8")
    (tmp_path / "pred").write_text(prediction, encoding="utf-8")
    assert score_main([task, str(tmp_path / "gold"), str(tmp_path / "pred")]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(expected)


def test_retrieval_targets_read_local_files_only() -> None:
    from hydra import compose, initialize_config_module

    import stilts.cli.resolvers  # noqa: F401
    from stilts.run.evaluate import evaluate_retrieval

    with initialize_config_module("stilts.conf", version_base="1.3"):
        cfg = compose("config", overrides=["target=tatoeba"])
    with pytest.raises(StiltsError, match="data=local"):
        evaluate_retrieval(cfg, get_task("tatoeba"), [], "unused", ["de"], Path("unused"))


def test_tatoeba_xtreme_layout_gives_predictions_but_no_accuracy(shared_data, tmp_path, embed, caplog) -> None:
    """XTREME's tatoeba_preprocess copies the source side and sorts the English side: readable, not scorable."""
    (tmp_path / "tatoeba").mkdir()
    shutil.copy(shared_data / "tatoeba/v1/tatoeba.deu-eng.deu", tmp_path / "tatoeba" / "de-en.de")
    english = read_sentences(shared_data / "tatoeba/v1/tatoeba.deu-eng.eng")
    (tmp_path / "tatoeba" / "de-en.en").write_text("".join(f"{s}\n" for s in sorted(english)), encoding="utf-8")
    [(metrics, _, predictions)] = get_task("tatoeba").retrieve(embed, tmp_path, ["de"], "test").values()
    assert metrics == {} and len(predictions.splitlines()) == 1000
    assert "sorted" in caplog.text


def test_embedding_drops_unused_layers_with_identical_vectors(tiny_model_dir) -> None:
    """Layer 1 of 2: the embedder keeps one transformer layer, and its vectors are the full model's
    hidden state 1, mean-pooled, bit for bit."""
    import torch

    from stilts.model.encoder import load_encoder, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    texts = ["A short sentence.", "A much longer sentence, padded in no batch of its own.", "x"]
    full = load_encoder(str(tiny_model_dir)).eval()
    with torch.no_grad():
        vectors = []
        for text in texts:  # one at a time: no padding at all
            batch = tokenizer([text], return_tensors="pt")
            hidden = full(**batch, output_hidden_states=True).hidden_states[1]
            vectors.append(torch.nn.functional.normalize(hidden.mean(1), dim=-1)[0].numpy())
    embedder = SentenceEmbedder(load_encoder(str(tiny_model_dir)), tokenizer, EmbeddingSettings(layer=1), device="cpu")
    assert len(embedder.encoder.encoder.layer) == 1 and embedder.encoder.config.num_hidden_layers == 1
    assert np.allclose(embedder(texts), np.stack(vectors), atol=1e-6)
    with pytest.raises(StiltsError, match="layer 2 does not exist"):  # the dropped layers are gone for good
        SentenceEmbedder(embedder.encoder, tokenizer, EmbeddingSettings(layer=2))
