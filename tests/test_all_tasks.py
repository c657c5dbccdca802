"""Every task of the paper and of XTREME/XTREME-R runs one quickstart pipeline through the real CLI;
the prediction files each run writes re-score (with `python -m stilts.score`) to its results.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stilts.cli.score import main as score_main
from stilts.tasks import get_task
from stilts.tasks.common.sources import SAMPLES_ROOT, find_files
from tests.cli import ONE_THREAD, PARALLEL_SWEEP, check_results_schema, run_folder, stilts

INTERMEDIATE = ("anli_plus", "mnli", "qqp", "squad", "hellaswag", "cosmosqa", "commonsenseqa", "socialiqa", "ccg")
TARGETS = ("xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "xcopa")
RETRIEVAL = ("tatoeba", "bucc", "lareqa", "mewslix")


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory, stilts_cache) -> Path:
    """Two multiruns in one workspace: every intermediate task before a small XNLI, every target alone."""
    workspace = tmp_path_factory.mktemp("all-tasks")
    quick = ("experiment=quickstart", "train.max_epochs=1")
    intermediate = stilts("-m", f"+intermediate={','.join(INTERMEDIATE)}", "target=xnli", "target.languages=[en,de]",
                          *quick, *PARALLEL_SWEEP, cache=stilts_cache, cwd=workspace, env=ONE_THREAD, timeout=1500)
    assert intermediate.returncode == 0, intermediate.stderr[-4000:]
    targets = stilts("-m", f"target={','.join(TARGETS + RETRIEVAL)}", *quick, *PARALLEL_SWEEP, cache=stilts_cache,
                     cwd=workspace, env=ONE_THREAD, timeout=1500)
    assert targets.returncode == 0, targets.stderr[-4000:]
    # Retrieval after an intermediate stage: the SQuAD stage of the first sweep is reused, not retrained.
    retrieval = stilts("-m", "+intermediate=squad", f"target={','.join(RETRIEVAL)}", *quick, cache=stilts_cache,
                       cwd=workspace, timeout=900)
    assert retrieval.returncode == 0, retrieval.stderr[-4000:]
    assert "Training" not in retrieval.stderr.split("Stage 1-squad")[-1].split("\n")[0]
    return workspace / "outputs" / "runs"


def _results(runs: Path, target: str, chain: str, **kwargs) -> dict:
    return json.loads((run_folder(runs, target, chain, **kwargs) / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", INTERMEDIATE)
def test_every_intermediate_task_feeds_a_target(sweeps, name) -> None:
    results = _results(sweeps, "xnli", name, languages=["en", "de"])
    check_results_schema(results, "xnli", [name], ["en", "de"])
    dev = results["intermediate_metrics"][name]
    assert set(get_task(name).main_metrics) <= set(dev)


@pytest.mark.slow
@pytest.mark.parametrize("name", TARGETS)
def test_every_target_is_scored_on_all_its_languages(sweeps, name, capsys) -> None:
    spec = get_task(name)
    results = _results(sweeps, name, "none")
    check_results_schema(results, name, [], list(spec.languages))
    for metric in spec.main_metrics:
        assert metric in results["average"]
    # Official-format predictions beside results.json re-score to the same numbers.
    split = results["config"]["target"]["eval_split"]
    for language in spec.languages:
        [prediction] = (run_folder(sweeps, name, "none") / "predictions").glob(f"{split}-{language}.*")
        [gold] = find_files(spec, split, language, SAMPLES_ROOT)
        assert score_main([name, str(gold), str(prediction), "--lang", language]) == 0
        rescored = json.loads(capsys.readouterr().out)
        for metric, value in results["metrics"][language].items():
            assert rescored[metric] == pytest.approx(value), (name, language, metric)


@pytest.mark.slow
@pytest.mark.parametrize("name", RETRIEVAL)
@pytest.mark.parametrize("chain", ["none", "squad"])
def test_every_retrieval_target_runs_with_and_without_intermediate(sweeps, name, chain, tmp_path, capsys) -> None:
    spec = get_task(name)
    results = _results(sweeps, name, chain)
    check_results_schema(results, name, [] if chain == "none" else [chain], list(spec.languages))
    assert all(0.0 <= results["metrics"][lang][spec.main_metrics[0]] <= 100.0 for lang in spec.languages)
    predictions = run_folder(sweeps, name, chain) / "predictions"
    assert sorted(p.name.split(".")[0] for p in predictions.iterdir()) == sorted(f"test-{l}" for l in spec.languages)
    if name in ("tatoeba", "bucc"):  # gold files exist: re-score the written predictions
        for language in spec.languages[:3]:
            files = find_files(spec, "test", language, SAMPLES_ROOT)
            if name == "tatoeba":
                gold = tmp_path / "gold.txt"
                gold.write_text("".join(f"{i}\n" for i in range(len(files[0].read_text().splitlines()))))
            else:
                gold = files[2]
            assert score_main([name, str(gold), str(predictions / f"test-{language}.tsv")]) == 0
            rescored = json.loads(capsys.readouterr().out)
            metric = spec.main_metrics[0]
            assert rescored[metric] == pytest.approx(results["metrics"][language][metric])


@pytest.mark.slow
def test_xcopa_follows_xtreme_r_recipe(sweeps) -> None:
    """XTREME-R trains XCOPA on Social IQa, then on English COPA: two stages, the second from the first."""
    run = run_folder(sweeps, "xcopa", "none")
    stages = sorted(p.name for p in (run / "stages").iterdir())
    assert stages == ["1-socialiqa", "2-xcopa"]
    copa = json.loads((run / "stages" / "2-xcopa" / "stage.json").read_text())
    assert Path(copa["encoder_source"]).parent.name == (run / "stages" / "1-socialiqa").resolve().name
    assert _results(sweeps, "xcopa", "none")["intermediate"] == []


@pytest.mark.slow
def test_xtreme_score_of_the_targets(sweeps, capsys) -> None:
    files = [str(run_folder(sweeps, name, "none") / "results.json") for name in TARGETS + RETRIEVAL]
    assert score_main(["xtreme", *files[:len(TARGETS)]]) == 0
    partial = json.loads(capsys.readouterr().out)
    assert partial["score"] is None and set(partial["missing"]) == {"bucc", "tatoeba"}
    assert score_main(["xtreme", *files]) == 0
    summary = json.loads(capsys.readouterr().out)
    scores = {name: _results(sweeps, name, "none")["score"] for name in TARGETS + RETRIEVAL}
    xtreme = [t for t in scores if t not in ("xcopa", "lareqa", "mewslix")]
    assert set(summary["tasks"]) == set(xtreme) and summary["missing"] == []
    assert summary["categories"]["question_answering"] == pytest.approx(
        sum(scores[t] for t in ("xquad", "mlqa", "tydiqa")) / 3)
    assert summary["score"] == pytest.approx(sum(scores[t] for t in xtreme) / 9)
    assert score_main(["xtreme", "--benchmark", "xtreme-r", *files]) == 0
    xtreme_r = json.loads(capsys.readouterr().out)
    assert {"xcopa", "lareqa", "mewslix", "tatoeba"} <= set(xtreme_r["tasks"]) and xtreme_r["score"] is not None
