"""Step-based model selection (jiant's eval_every_steps, eval subset, early stopping) through the
real CLI: the evaluations happen every N steps on the dev subset, the best step is the one kept, the
final dev metrics use the whole dev set, patience stops early, a killed run resumes to the same
selection, and a mixture selects the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import stilts

FAULTS = Path(__file__).resolve().parent / "faults"
# The quickstart XNLI stage: 18 optimizer steps (3 epochs of 6).
RUN = ("target=xnli", "experiment=quickstart", "target.languages=[en]", "train.eval_every_steps=2",
       "train.eval_subset=5", "train.checkpoint_every_n_steps=1")


def _stage(workspace: Path) -> dict:
    (path,) = (workspace / "outputs" / "stages").glob("xnli-*/stage.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def selected(tmp_path_factory, stilts_cache) -> Path:
    workspace = tmp_path_factory.mktemp("selection")
    run = stilts(*RUN, cache=stilts_cache, cwd=workspace)
    assert run.returncode == 0, run.stderr[-3000:]
    return workspace


@pytest.mark.slow
def test_evaluations_every_n_steps_on_the_subset_and_the_best_step_is_kept(selected) -> None:
    stage = _stage(selected)
    selection = stage["selection"]
    steps = [evaluation["step"] for evaluation in selection["evaluations"]]
    assert steps == list(range(2, stage["global_steps"] + 1, 2))
    scores = [evaluation["score"] for evaluation in selection["evaluations"]]
    assert all(score * 5 / 100 == round(score * 5 / 100) for score in scores)  # accuracies over 5 examples
    best = max(range(len(scores)), key=scores.__getitem__)  # the first of equal bests
    assert selection["best"] == selection["evaluations"][best]
    # The exported dev metrics and predictions are the whole dev set's (9 examples), after reloading the best step.
    (predictions,) = selected.glob("outputs/stages/xnli-*/predictions/dev-en.tsv")
    assert len(predictions.read_text().splitlines()) == 9
    assert round(stage["tasks"]["xnli"]["dev_metrics"]["en"]["accuracy"] * 9 / 100, 6).is_integer()


@pytest.mark.slow
def test_patience_stops_after_evaluations_without_improvement(tmp_path, stilts_cache, selected) -> None:
    run = stilts(*RUN, "train.patience=2", cache=stilts_cache, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    stage, full = _stage(tmp_path), _stage(selected)
    scores = [evaluation["score"] for evaluation in stage["selection"]["evaluations"]]
    best = max(range(len(scores)), key=scores.__getitem__)
    assert len(scores) == best + 1 + 2  # two evaluations without a better score, then stop
    assert stage["global_steps"] < full["global_steps"]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_selection(tmp_path, stilts_cache, selected) -> None:
    killed = stilts(*RUN, cache=stilts_cache, cwd=tmp_path,
                    env={"STILTS_KILL_AT": "train:xnli:7", "PYTHONPATH": str(FAULTS)})
    assert killed.returncode == -9, killed.stderr[-3000:]
    rerun = stilts(*RUN, cache=stilts_cache, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed, reference = _stage(tmp_path), _stage(selected)
    assert resumed["resumed_from_steps"]
    assert resumed["selection"] == reference["selection"]
    assert resumed["tasks"]["xnli"]["dev_metrics"] == reference["tasks"]["xnli"]["dev_metrics"]


@pytest.mark.slow
def test_a_mixture_selects_by_steps_on_its_members_dev_subsets(tmp_path, stilts_cache) -> None:
    run = stilts("+intermediate=mix", "intermediate.mix.tasks=[squad,mnli]", "target=xnli", "experiment=quickstart",
                 "target.languages=[en]", "train.eval_every_steps=3", "train.eval_subset=4", cache=stilts_cache,
                 cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    (path,) = (tmp_path / "outputs" / "stages").glob("mix-*/stage.json")
    stage = json.loads(path.read_text())
    steps = [evaluation["step"] for evaluation in stage["selection"]["evaluations"]]
    assert steps == list(range(3, stage["global_steps"] + 1, 3))
    # The exported dev metrics are those of the members' whole dev sets (SQuAD's sample has 20 questions).
    assert stage["tasks"]["squad"]["dev_metrics"]["en"]["total"] == 20


@pytest.mark.cli
def test_bad_selection_settings_are_one_error_line(tmp_path, stilts_cache) -> None:
    bad = stilts("target=xnli", "experiment=quickstart", "train.eval_subset=0", cache=stilts_cache, cwd=tmp_path,
                 timeout=120)
    assert bad.returncode == 2 and "train.eval_subset must be a positive whole number or null" in bad.stderr


@pytest.mark.slow
def test_selection_on_the_whole_dev_set_reuses_the_best_evaluation(tmp_path, stilts_cache) -> None:
    """Without a dev subset the best evaluation's results are exported as they are (no second
    validation); they equal what re-validating the reloaded best weights gives (forced here by a
    subset as large as the dev set, 9 examples)."""
    whole = tmp_path / "whole"
    forced = tmp_path / "forced"
    base = [arg for arg in RUN if not arg.startswith("train.eval_subset")]
    for workspace, extra in ((whole, []), (forced, ["train.eval_subset=9"])):
        workspace.mkdir()
        run = stilts(*base, *extra, cache=stilts_cache, cwd=workspace)
        assert run.returncode == 0, run.stderr[-3000:]
    reused, validated = _stage(whole), _stage(forced)
    assert reused["selection"]["evaluations"] == validated["selection"]["evaluations"]
    assert reused["tasks"]["xnli"]["dev_metrics"] == validated["tasks"]["xnli"]["dev_metrics"]
    assert reused["dev_score"] == validated["dev_score"]
    assert reused["dev_score"] == pytest.approx(reused["selection"]["best"]["score"], rel=1e-6)  # logged as float32
    [a], [b] = (list(w.glob("outputs/stages/xnli-*/predictions/dev-en.tsv")) for w in (whole, forced))
    assert a.read_text() == b.read_text()
