"""XTREME-R's retrieval recipes: the dual-encoder head and its pair data, and LAReQA, Mewsli-X and
Tatoeba recipes on the quickstart through the real CLI, beside the frozen-encoder protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stilts.heads import FeaturizeSettings, get_head
from stilts.errors import StiltsError
from stilts.heads.networks import DualEncoderHead
from stilts.tasks import get_task
from stilts.tasks.mewslix import entity_text, marked_mention
from stilts.tasks.mewslix_pairs import read_mention_entity_pairs
from stilts.tasks.common.pair_ranking import score_pairs
from stilts.tasks.common.sources import SAMPLES_ROOT
from stilts.tasks.squad_pairs import read_squad_pairs
from tests.cli import expect_exact_retraining, stilts


def test_dual_encoder_loss_uses_in_batch_negatives() -> None:
    torch.manual_seed(0)
    head = DualEncoderHead(8)
    states = torch.randn(4, 1, 8)
    batch = {"attention_mask": torch.ones(4, 2, 1, dtype=torch.long)}
    matched = torch.cat([states, states], dim=1).view(8, 1, 8)  # each query equals its own candidate
    crossed = torch.cat([states, states.roll(1, dims=0)], dim=1).view(8, 1, 8)  # ... and now another's
    good, bad = head(matched, batch), head(crossed, batch)
    assert good.logits.shape == (4, 2, 8)
    assert torch.allclose(good.logits.norm(dim=-1), torch.ones(4, 2))
    assert good.loss < 0.01 < 1.0 < bad.loss  # scale 100: the right candidate wins the softmax by far
    assert head.logit_scale.item() == 100.0  # XTREME's BertForRetrieval initial scale
    assert len(head.predict(good.logits, batch)) == 4


def test_pair_features_keep_query_and_candidate_apart(tiny_tokenizer) -> None:
    batch = {"query": ["Who built it?", "When?"], "candidate": ["Eiffel built it.", "In 1889."],
             "candidate_context": ["Eiffel built it. In 1889.", "Eiffel built it. In 1889."], "example_index": [0, 1]}
    features = get_head("dual_encoder").featurize(batch, tiny_tokenizer, FeaturizeSettings(max_length=64, max_query_length=8), {})
    query, candidate = features["input_ids"][0]
    assert query == tiny_tokenizer("Who built it?")["input_ids"]
    assert candidate == tiny_tokenizer("Eiffel built it.", "Eiffel built it. In 1889.")["input_ids"]  # two segments
    batch["candidate_context"] = [None, "x"]
    with pytest.raises(StiltsError, match="all have a candidate_context or none"):
        get_head("dual_encoder").featurize(batch, tiny_tokenizer, FeaturizeSettings(), {})


def test_marked_mention_is_xtreme_r_preprocessing() -> None:
    """utils_mewslix.preprocess_mention: the mention prepended, its sentence with it between markers,
    markers already in the text escaped to parentheses, spaces normalised."""
    text = "An intro. The verdict came back for Smith, who left {office} in 2012. Later news."
    start = text.index("Smith")
    sentence = (10, text.index(" Later"))
    assert marked_mention(text, sentence, (start, start + 5)) == (
        "Smith: The verdict came back for { Smith } , who left (office) in 2012.")
    assert entity_text("First one.\nSecond  one.", [{"start": 0, "end": 10}, [11, 23]]) == "First one. Second one."


def test_squad_pairs_pair_each_question_with_its_answer_sentence() -> None:
    pairs = read_squad_pairs(SAMPLES_ROOT / "squad" / "dev-v1.1.json")
    source = json.loads((SAMPLES_ROOT / "squad" / "dev-v1.1.json").read_text())
    answers = {qa["id"]: qa["answers"][0]["text"] for article in source["data"]
               for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    assert len(pairs) == len(answers) == 16
    for pair in pairs:
        assert answers[pair["id"]] in pair["candidate"]  # the sentence holds the answer
        assert pair["candidate"] in pair["candidate_context"] and pair["candidate"] != pair["candidate_context"]
    assert len({pair["candidate_id"] for pair in pairs}) <= len(pairs)


def test_mention_entity_pairs_read_mewslix_records(tmp_path) -> None:
    pairs = read_mention_entity_pairs(SAMPLES_ROOT / "mewslix" / "wikipedia_pairs-train.jsonl")
    assert len(pairs) == 16
    first = pairs[0]
    assert first["query"].startswith("Berlin: ") and "{ Berlin }" in first["query"]
    assert first["candidate"].startswith("Berlin is the capital") and first["candidate_id"] == "Q64"
    broken = tmp_path / "pairs.jsonl"
    broken.write_text('{"contextual_mention": {"context": {}}}\n')
    with pytest.raises(StiltsError, match=r"pairs.jsonl:1: not a Mewsli-X MentionEntityPair record"):
        read_mention_entity_pairs(broken)


def test_pair_scores_rank_among_all_distinct_candidates() -> None:
    examples = [{"id": str(i), "candidate_id": c} for i, c in enumerate(["a", "b", "a"])]
    a, b = [1.0, 0.0], [0.0, 1.0]
    # Queries 0 and 2 find "a" first; query 1 (gold "b") finds "a" first and "b" second.
    predictions = [[a, a], [[0.8, 0.6], b], [a, a]]
    scores = score_pairs(examples, predictions)
    assert scores["map@20"] == pytest.approx(100 * (1 + 0.5 + 1) / 3)
    assert scores["p@1"] == pytest.approx(200 / 3)


def test_pair_tasks_are_dual_encoders() -> None:
    for name in ("squad_pairs", "mewslix_pairs"):
        spec = get_task(name)
        assert spec.head == "dual_encoder" and spec.main_metrics == ("map@20", "p@1")


def _results(runs: Path) -> dict[tuple[str, str], dict]:
    """The fixture's runs (on every language) by (target, recipe)."""
    found = {}
    for path in runs.rglob("results.json"):
        results = json.loads(path.read_text())
        if results["config"]["target"]["languages"] is None:
            found[(results["target"], results["retrieval"]["recipe"])] = results
    return found


@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory, stilts_cache) -> Path:
    workspace = tmp_path_factory.mktemp("recipes")
    quick = ("experiment=quickstart", "train.max_epochs=1")  # the quickstart's effective batch is 16
    run = stilts("-m", "target=lareqa,lareqa_dual_encoder,tatoeba_squad", *quick, cache=stilts_cache, cwd=workspace,
                 timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    mewslix = stilts("target=mewslix_dual_encoder", "target.before.mewslix_pairs.pairs_per_batch=8", *quick,
                     cache=stilts_cache, cwd=workspace, timeout=600)
    assert mewslix.returncode == 0, mewslix.stderr[-4000:]
    return workspace


@pytest.mark.slow
def test_lareqa_dual_encoder_recipe_on_the_quickstart(recipe_runs) -> None:
    results = _results(recipe_runs / "outputs" / "runs")
    assert set(results) == {("lareqa", "frozen_encoder"), ("lareqa", "dual_encoder"),
                            ("mewslix", "dual_encoder"), ("tatoeba", "fine_tuned_encoder")}
    dual, frozen = results[("lareqa", "dual_encoder")], results[("lareqa", "frozen_encoder")]
    assert dual["retrieval"] == {"recipe": "dual_encoder", "embedder": "dual-encoder pooler of 1-squad_pairs",
                                 "layer": 2, "pooling": "cls", "text_format": "xtreme_r"}
    assert frozen["retrieval"]["embedder"] == "pretrained encoder" and frozen["retrieval"]["text_format"] == "plain"
    assert dual["target_key"] != frozen["target_key"]  # never each other's baseline
    [stage] = dual["stages"].values()
    assert stage["reused"] is False and stage["global_steps"] > 0
    stage_file = next((recipe_runs / "outputs" / "stages").glob("squad_pairs-*/stage.json"))
    summary = json.loads(stage_file.read_text())
    assert summary["batch_layout"]["micro_batch_size"] == 4  # pairs_per_batch: 3 in-batch negatives per query
    assert set(summary["tasks"]["squad_pairs"]["dev_metrics"]["en"]) == {"map@20", "p@1"}
    assert all(0.0 <= values["map@20"] <= 100.0 for values in dual["metrics"].values())
    assert results[("tatoeba", "fine_tuned_encoder")]["retrieval"]["embedder"] == "encoder of 1-xquad"
    mewslix = results[("mewslix", "dual_encoder")]
    assert mewslix["config"]["target"]["before"]["mewslix_pairs"]["pairs_per_batch"] == 8
    assert mewslix["retrieval"]["text_format"] == "xtreme_r"


@pytest.mark.cli
def test_pairs_per_batch_must_divide_the_effective_batch(tmp_path, stilts_cache) -> None:
    run = stilts("target=mewslix_dual_encoder", "experiment=quickstart", cache=stilts_cache, cwd=tmp_path, timeout=300)
    assert run.returncode != 0
    [line] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "effective batch 16 is not a multiple of pairs_per_batch 64" in line


@pytest.mark.slow
def test_a_recipe_stage_is_reused_and_a_conflicting_setting_is_refused(recipe_runs, stilts_cache) -> None:
    again = stilts("target=lareqa_dual_encoder", "target.languages=[en,de]", "experiment=quickstart",
                   "train.max_epochs=1", cache=stilts_cache, cwd=recipe_runs, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    [subset] = [json.loads(path.read_text()) for path in (recipe_runs / "outputs" / "runs").rglob("results.json")
                if json.loads(path.read_text())["config"]["target"]["languages"] == ["en", "de"]]
    # Evaluation languages are not part of the recipe stage's identity: the same stage, whose encoder
    # was dropped once the first run was evaluated, is trained again to the same weights.
    [everything] = [results for (target, recipe), results in _results(recipe_runs / "outputs" / "runs").items()
                    if (target, recipe) == ("lareqa", "dual_encoder")]
    assert subset["stages"]["1-squad_pairs"]["key"] == everything["stages"]["1-squad_pairs"]["key"]
    assert subset["stages"]["1-squad_pairs"]["retrained"] is True
    refused = stilts("target=lareqa_dual_encoder", "target.layer=1", "experiment=quickstart", cache=stilts_cache,
                     cwd=recipe_runs, timeout=300)
    assert refused.returncode != 0
    [line] = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert "set target.layer=null" in line
    expect_exact_retraining(again.stdout + again.stderr, "1-squad_pairs")


@pytest.mark.cli
def test_dual_encoders_do_not_train_inside_mixtures(tmp_path, stilts_cache) -> None:
    run = stilts("+intermediate=mix", "intermediate.mix.tasks=[squad_pairs,mnli]", "target=xnli",
                 "experiment=quickstart", cache=stilts_cache, cwd=tmp_path, timeout=300)
    assert run.returncode != 0
    assert any(line.startswith("error:") and "stage of its own" in line for line in run.stderr.splitlines())


def test_text_format_chooses_what_lareqa_and_mewslix_embed() -> None:
    import numpy as np

    seen: list = []

    def embed(texts):
        seen.extend(texts)
        return np.eye(len(texts), 8, dtype=np.float32)

    get_task("lareqa").retrieve(embed, SAMPLES_ROOT, ["en"], "test", {"text_format": "xtreme_r"})
    pairs = [text for text in seen if isinstance(text, tuple)]
    assert pairs and all(sentence in paragraph for sentence, paragraph in pairs)  # (sentence, paragraph)
    seen.clear()
    get_task("mewslix").retrieve(embed, SAMPLES_ROOT, ["en"], "test", {"text_format": "xtreme_r"})
    assert any(" { " in text and " } " in text for text in seen)  # marked mentions
    seen.clear()
    get_task("mewslix").retrieve(embed, SAMPLES_ROOT, ["en"], "test")
    assert not any(" { " in text for text in seen)  # plain: the sentence as it is
    with pytest.raises(StiltsError, match="text_format of lareqa must be one of plain, xtreme_r"):
        get_task("lareqa").retrieve(embed, SAMPLES_ROOT, ["en"], "test", {"text_format": "sentences"})
