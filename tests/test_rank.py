"""Ranking intermediate tasks before training (`python -m stilts.rank`): the probe rows of each head
type, the encoder probe against direct computation, the config checks, the CLI on the quickstart
before anything is trained (on trained stages: test_report_sweeps.py), and the report's check of
rankings against hand-made gains."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from scipy import stats

import stilts.cli.resolvers  # noqa: F401  (registers the stilts.* resolvers)
from stilts import report
from stilts.store import stages
from stilts.checks import check_rank_config, training_config
from stilts.heads import FeaturizeSettings
from stilts.data.probe import probe_data, sample_examples
from stilts.errors import StiltsError
from stilts.settings import RankConfig, explain
from stilts.store.identity import comparison_keys
from stilts.model.encoder import load_encoder
from stilts.heads import get_head
from stilts.heads.base import WHOLE_SEQUENCE
from stilts.model.probe import leep_mismatch, probe_encoder
from stilts.run.ranking import rank
from stilts.tasks import get_task, task_names
from stilts.tasks.common.sources import SAMPLES_ROOT, load_examples
from tests.test_report import stage, write_run

NINE = ["squad", "mnli", "anli_plus", "qqp", "hellaswag", "cosmosqa", "commonsenseqa", "socialiqa", "ccg"]




def sample(task: str, count: int = 12):
    spec = get_task(task)
    return spec, sample_examples(load_examples(spec, "train", "en", "files", SAMPLES_ROOT), count, seed=0)


def compose_rank(*overrides: str):
    with initialize_config_module("stilts.conf", version_base="1.3"):
        return compose("rank", overrides=["experiment=quickstart", *overrides])


# ------------------------------------------------------------------------------ probe rows


def test_sampling_is_seeded_and_keeps_order() -> None:
    items = [{"i": i} for i in range(100)]
    first, again = sample_examples(items, 10, seed=3), sample_examples(items, 10, seed=3)
    assert first == again and len(first) == 10
    assert [item["i"] for item in first] == sorted(item["i"] for item in first)
    assert sample_examples(items, 10, seed=4) != first
    assert sample_examples(items[:5], 10, seed=3) == items[:5]


def test_classification_and_choice_rows(tiny_tokenizer) -> None:
    spec, examples = sample("xnli")
    data = probe_data(spec, examples, tiny_tokenizer, FeaturizeSettings())
    assert len(data.sequences) == len(examples) and (data.rows[:, 1] == WHOLE_SEQUENCE).all()
    assert data.labels.tolist() == [spec.label_to_id[example["label"]] for example in examples]
    spec, examples = sample("xcopa")
    data = probe_data(spec, examples, tiny_tokenizer, FeaturizeSettings())
    choices = [len(example["choices"]) for example in examples]
    assert len(data.sequences) == len(data.labels) == sum(choices)
    ones = np.flatnonzero(data.labels)  # exactly the right choice of each example
    assert ones.tolist() == [sum(choices[:i]) + example["label"] for i, example in enumerate(examples)]


def test_tagging_rows_are_first_subwords(tiny_tokenizer) -> None:
    spec, examples = sample("udpos")
    data = probe_data(spec, examples, tiny_tokenizer, FeaturizeSettings(max_length=512))
    assert len(data.labels) == sum(len(example["tokens"]) for example in examples)
    assert data.labels.tolist() == [spec.label_to_id[tag] for example in examples for tag in example["tags"]]


def test_qa_rows_mark_the_answer_tokens(tiny_tokenizer) -> None:
    spec, examples = sample("tydiqa")
    settings = FeaturizeSettings(max_length=384, doc_stride=128)
    data = probe_data(spec, examples, tiny_tokenizer, settings)
    inside = data.rows[data.labels == 1]
    answers = {example["answers"]["text"][0].strip() for example in examples}
    for sequence in np.unique(inside[:, 0]):
        positions = inside[inside[:, 0] == sequence, 1]
        assert (np.diff(positions) == 1).all()  # one contiguous span per window
        text = tiny_tokenizer.decode([data.sequences[sequence][p] for p in positions]).strip()
        assert text in answers or any(text in answer or answer in text for answer in answers)
    assert 0 < (data.labels == 1).sum() < len(data.labels)


def test_unlabelled_probe_needs_no_gold_and_rows_subsample(tiny_tokenizer) -> None:
    spec, examples = sample("ccg")
    text_only = probe_data(spec, examples, tiny_tokenizer, FeaturizeSettings(), labelled=False)
    assert len(text_only.sequences) == len(examples) and len(text_only.labels) == 0
    spec, examples = sample("udpos")
    data = probe_data(spec, examples, tiny_tokenizer, FeaturizeSettings())
    fewer = data.subsample_rows(7, seed=0)
    assert len(fewer.labels) == 7 and fewer.sequences is data.sequences
    assert (np.diff(fewer.rows[:, 0] * 10_000 + fewer.rows[:, 1]) > 0).all()  # kept in order


# ------------------------------------------------------------------------------ the encoder probe


def test_probe_matches_the_encoder_run_on_each_sequence_alone(tiny_model_dir, tiny_tokenizer) -> None:
    """Batched, padded and length-ordered, each row's feature, each text mean and each head
    distribution equal what the encoder gives the sequence alone."""
    spec, examples = sample("udpos", 6)
    data = probe_data(spec, examples, tiny_tokenizer, FeaturizeSettings())
    encoder = load_encoder(str(tiny_model_dir)).eval()
    torch.manual_seed(0)
    head = get_head("tagging").module(encoder.config.hidden_size, 5).eval()
    output = probe_encoder(encoder, data.sequences, data.rows, tiny_tokenizer.pad_token_id, batch_size=4,
                           device="cpu", head=head, head_type=get_head("tagging"))
    with torch.no_grad():
        alone = [encoder(input_ids=torch.tensor([ids])).last_hidden_state[0] for ids in data.sequences]
    for index, states in enumerate(alone):
        np.testing.assert_allclose(output.text[index], states.mean(0).numpy(), rtol=1e-4, atol=1e-5)
    expected = torch.stack([alone[s][p] for s, p in data.rows])
    np.testing.assert_allclose(output.features, expected.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(output.probabilities, torch.softmax(head.classifier(expected), -1).detach().numpy(),
                               rtol=1e-4, atol=1e-6)
    assert output.tokens.tolist() == [len(ids) for ids in data.sequences]


def test_sequence_rows_pool_the_first_token_or_the_mean(tiny_model_dir, tiny_tokenizer) -> None:
    spec, examples = sample("xnli", 5)
    data = probe_data(spec, examples, tiny_tokenizer, FeaturizeSettings())
    encoder = load_encoder(str(tiny_model_dir)).eval()
    head = get_head("classification").module(encoder.config.hidden_size, 3).eval()
    first = probe_encoder(encoder, data.sequences, data.rows, tiny_tokenizer.pad_token_id, batch_size=2,
                          device="cpu", head=head, head_type=get_head("classification"))
    mean = probe_encoder(encoder, data.sequences, data.rows, tiny_tokenizer.pad_token_id, batch_size=2,
                         pooling="mean", device="cpu")
    with torch.no_grad():
        alone = [encoder(input_ids=torch.tensor([ids])).last_hidden_state[0] for ids in data.sequences]
        logits = torch.stack([head(states[None], {}).logits[0] for states in alone]).detach()
    np.testing.assert_allclose(first.features, torch.stack([s[0] for s in alone]).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean.features, mean.text, rtol=1e-6)
    np.testing.assert_allclose(first.probabilities, torch.softmax(logits, -1).numpy(), rtol=1e-4, atol=1e-6)


def test_leep_needs_a_head_that_labels_the_target_rows() -> None:
    sequences = np.array([[0, WHOLE_SEQUENCE], [1, WHOLE_SEQUENCE]])
    tokens = np.array([[0, 3], [0, 4]])
    assert leep_mismatch(get_head("classification"), sequences) is None and leep_mismatch(get_head("tagging"), tokens) is None
    assert "labels sequences" in leep_mismatch(get_head("classification"), tokens)
    assert "labels tokens" in leep_mismatch(get_head("tagging"), sequences)
    assert "no distribution" in leep_mismatch(get_head("span_qa"), tokens)


# ------------------------------------------------------------------------------ config checks


def test_rank_config_shares_the_training_identity() -> None:
    cfg = compose_rank("target=tydiqa", "seed=1")
    check_rank_config(cfg)
    assert list(cfg.candidates) == NINE
    assert sorted(NINE) == sorted(name for name in task_names() if get_task(name).xstilts_pool)  # the paper's pool
    with initialize_config_module("stilts.conf", version_base="1.3"):
        train = compose("config", overrides=["experiment=quickstart", "target=tydiqa", "seed=1"])
    assert comparison_keys(training_config(cfg)) == comparison_keys(train)


@pytest.mark.parametrize(("overrides", "message"), [
    (["candidates=[squad,nope]"], "candidates: unknown task 'nope'"),
    (["candidates=[squad,squad]"], "lists squad twice"),
    (["candidates=[]"], "non-empty list"),
    (["candidates=[none]"], "no-intermediate baseline"),
    (["method=best"], "method must be one of data_size, text_similarity"),
    (["rank.max_examples=1"], "rank.max_examples must be a whole number of at least 2"),
    (["+rank.samples=3"], "unknown setting rank.'samples'"),
    (["+intermediate=squad"], "drop +intermediate"),
    (["target=tatoeba"], "no labelled training data"),
])
def test_bad_rank_settings_are_named(overrides, message) -> None:
    with pytest.raises(StiltsError, match=message.replace("(", r"\(").replace("+", r"\+")):
        check_rank_config(compose_rank("target=tydiqa", *overrides))


@pytest.mark.parametrize(("override", "message"), [
    ("rank.pooling=max", "rank.pooling must be one of cls, mean, not 'max'"),
    ("rank.dtype=int8", "rank.dtype must be one of float32, bfloat16, float16, not 'int8'"),
    ("rank.batch_size=many", "rank.batch_size must be a positive whole number, not 'many'"),
    ("candidates=squad", "candidates must be"),
])
def test_the_rank_schema_names_a_badly_typed_setting(override, message) -> None:
    """stilts.settings.RankConfig types rank.*: the config does not compose, and stilts.rank's one
    `error:` line (stilts.cli.entry) says which key must be what."""
    with pytest.raises((HydraException, OmegaConfBaseException)) as error:
        compose_rank("target=tydiqa", override)
    assert message in explain(error.value, RankConfig)


@pytest.mark.parametrize(("override", "message"), [
    ("rank.device=tpu0", "rank.device must be null"),
] + ([] if torch.cuda.is_available() else [("rank.device=cuda", "torch sees no CUDA device")]))
def test_bad_probe_settings_fail_before_any_work(override, message) -> None:
    with pytest.raises(StiltsError, match=message):
        rank(compose_rank("target=tydiqa", override))


def test_a_damaged_stage_is_not_used_and_left_in_place(tmp_path) -> None:
    """The ranking reads the stage store: a stage whose files changed gives no estimate, and its
    stage.json stays where it is (training, not ranking, sets a damaged stage aside)."""
    folder = tmp_path / "squad-0123"
    (folder / "encoder").mkdir(parents=True)
    (folder / "encoder" / "model.safetensors").write_bytes(b"weights")
    stages.publish(folder, {"key": "0123"})
    assert stages.finished(folder, set_aside_damaged=False) is not None
    (folder / "encoder" / "model.safetensors").write_bytes(b"changed")
    assert stages.finished(folder, set_aside_damaged=False) is None
    assert (folder / stages.STAGE_FILE).exists()
    assert stages.finished(folder) is None and not (folder / stages.STAGE_FILE).exists()  # training's way


# ------------------------------------------------------------------------------ the CLI


def run_rank(*overrides: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    environment = dict(os.environ, STILTS_CACHE=str(cache), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "stilts.rank", "experiment=quickstart", *overrides], cwd=cwd,
                          env=environment, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_ranks_the_nine_tasks_before_anything_is_trained(tmp_path, stilts_cache) -> None:
    done = run_rank("target=tydiqa", f"paths.output_dir={tmp_path}", cwd=tmp_path, cache=stilts_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "rankings" / "tydiqa" / "tiny" / "seed42"
    document = json.loads((folder / "ranking.json").read_text(encoding="utf-8"))
    records = document["candidates"]
    assert sorted(record["candidate"] for record in records) == sorted(NINE)
    similarities = [record["estimates"]["text_similarity"] for record in records]
    assert [record["rank"] for record in records] == list(range(1, 10))
    assert similarities == sorted(similarities, reverse=True) and all(-1 <= s <= 1 for s in similarities)
    assert all(record["stage"] is None and record["estimates"]["logme"] is None for record in records)
    assert "no trained stage" in records[0]["notes"]["logme"]
    # The DataSize baseline: each candidate's training examples (here the shipped samples').
    assert {record["candidate"]: record["estimates"]["data_size"] for record in records} == {
        name: len(load_examples(get_task(name), "train", "en", "files", SAMPLES_ROOT)) for name in NINE}
    assert document["target_rows"]["rows"] > 0 and document["seconds"]["total"] > 0
    with open(folder / "ranking.csv", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [row["candidate"] for row in table] == [record["candidate"] for record in records]
    assert "tydiqa: 9 intermediate candidates ranked by text_similarity" in done.stdout
    assert "cost:" in done.stdout
    refused = run_rank("target=tydiqa", "method=logme", f"paths.output_dir={tmp_path}", cwd=tmp_path,
                       cache=stilts_cache)
    assert refused.returncode == 2
    error = refused.stderr.strip().splitlines()[-1]
    assert error.startswith("error: method=logme reads trained intermediate stages") and "Traceback" not in refused.stderr
    bad = run_rank("target=tydiqa", "candidates=[squad,nope]", f"paths.output_dir={tmp_path}", cwd=tmp_path,
                   cache=stilts_cache)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: candidates: unknown task")


# ------------------------------------------------------------------------------ the report's check


def write_ranking(folder: Path, estimates: dict[str, float | None], *, method: str = "logme", setting: str = "s1",
                  target: str = "xnli") -> None:
    records = [{"candidate": name, "estimates": {"text_similarity": 0.5, method: value}}
               for name, value in estimates.items()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ranking.json").write_text(json.dumps({
        "target": target, "model_label": "m", "seed": 1, "method": method, "setting_key": setting,
        "target_key": f"{target}-t", "candidates": records}), encoding="utf-8")


def test_the_check_gives_its_spread_over_the_sweeps_seeds(tmp_path) -> None:
    """Seed 1's gains follow LogME's order, seed 2's reverse it: rho 1 then -1; the mean gains are equal."""
    runs_dir = tmp_path / "runs"
    for seed, gains in ((1, {"squad": 3.0, "mnli": 2.0, "qqp": 1.0}), (2, {"squad": 1.0, "mnli": 2.0, "qqp": 3.0})):
        write_run(runs_dir, "xnli", [], seed, 70.0)
        for name, gain in gains.items():
            write_run(runs_dir, "xnli", [stage(name)], seed, 70.0 + gain)
    write_ranking(tmp_path / "rankings", {"squad": 0.9, "mnli": 0.5, "qqp": 0.1})
    check = report.ranking_check(report.load_runs(runs_dir), report.load_rankings(tmp_path / "rankings"))
    logme = check.set_index("estimate").loc["logme"]
    assert logme["seeds"] == 2 and logme["spearman sd"] == pytest.approx(np.std([1.0, -1.0], ddof=1))
    # Regret@1: seed 1 trains its best (0); seed 2 trains squad (71) instead of qqp (73).
    assert logme["regret@1 sd"] == pytest.approx(np.std([0.0, (73 - 71) / 73 * 100], ddof=1))
    assert np.isnan(logme["spearman"])  # on the mean over seeds every gain is 2: no order to correlate with


def test_report_checks_a_ranking_against_hand_made_gains(tmp_path) -> None:
    """Baseline 70; real gains squad +4, mnli +2, qqp +1, hellaswag -1 (two seeds each). LogME ranks
    mnli > squad > qqp > hellaswag: Spearman as scipy computes it; Regret@1 = (74 - 72) / 74 x 100."""
    runs_dir = tmp_path / "runs"
    gains = {"squad": 4.0, "mnli": 2.0, "qqp": 1.0, "hellaswag": -1.0}
    for seed, noise in ((1, -0.5), (2, 0.5)):
        write_run(runs_dir, "xnli", [], seed, 70.0 + noise)
        for name, gain in gains.items():
            write_run(runs_dir, "xnli", [stage(name)], seed, 70.0 + gain + noise)
    estimates = {"mnli": 0.9, "squad": 0.5, "qqp": 0.4, "hellaswag": 0.1, "cosmosqa": 0.95, "ccg": None}
    write_ranking(tmp_path / "rankings" / "a", estimates)
    write_ranking(tmp_path / "rankings" / "other", estimates, setting="s2")  # other settings: no runs match
    (tmp_path / "rankings" / "damaged").mkdir()
    (tmp_path / "rankings" / "damaged" / "ranking.json").write_text('{"target": "xnli", "cand', encoding="utf-8")
    runs = report.load_runs(runs_dir)
    check = report.ranking_check(runs, report.load_rankings(tmp_path / "rankings"))
    logme = check[(check.estimate == "logme") & (check.candidates == 4)].iloc[0]
    names = list(gains)
    expected = stats.spearmanr([estimates[name] for name in names], [gains[name] for name in names])
    assert logme["spearman"] == pytest.approx(expected.statistic) and logme["p"] == pytest.approx(expected.pvalue)
    assert logme["regret@1"] == pytest.approx((74.0 - 72.0) / 74.0 * 100)
    assert logme["regret@3"] == 0.0
    assert logme["best (real)"] == "squad" and logme["top (estimated)"] == "mnli"
    assert bool(logme["orders the ranking"])
    constant = check[(check.estimate == "text_similarity") & (check.candidates == 4)].iloc[0]
    assert "constant" in constant["note"] and np.isnan(constant["spearman"])
    unmatched = check[check.candidates == 0]
    assert len(unmatched) == 2 and unmatched.note.str.contains("at least 3").all()
    assert len(report.load_rankings(tmp_path / "rankings")) == 2  # the damaged one is skipped
    built = report.build_report([runs_dir, tmp_path / "rankings"], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Rankings before training vs real gains" in text and "transfer.csv" in text
    assert len(built.tables["transfer"]) == len(check)
