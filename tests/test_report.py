"""stilts.report on hand-built results.json documents whose answers are known: gains, mean/std,
matched and unmatched baselines, benchmark averages, correlations and paired tests against scipy,
scale, diversity, retrieval, missing values, damaged files and the CLI."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stilts import report
from stilts.errors import StiltsError
from stilts.report.__main__ import main as report_main
from stilts.report.render import main_cells

DOMAINS = {"squad": "qa", "mnli": "nli", "qqp": "paraphrase", "hellaswag": "commonsense", "cosmosqa": "commonsense",
           "mlm": "language_modeling"}
XTREME_TASKS = ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc", "tatoeba"]


def stage(name: str, tasks: list[str] | None = None, languages: list[str] | None = None) -> dict:
    tasks = tasks or [name]
    langs = {task: list(languages or ["en"]) for task in tasks}
    return {"name": name, "tasks": tasks, "languages": langs, "domains": {task: DOMAINS[task] for task in tasks},
            "multilingual": any(set(value) != {"en"} for value in langs.values()),
            "mixture": {"sampler": "proportional"} if len(tasks) > 1 or name != tasks[0] else None}


def write_run(root: Path, target: str, stages: list[dict], seed: int, score: float, *, model: str = "m",
              setting: str = "s1", target_key: str | None = None, scores: dict | None = None,
              dev: dict | None = None, recipe: str | None = None) -> Path:
    """A results.json as the pipeline writes it (only the keys the report reads)."""
    scores = scores or {"en": score}
    chain = [s["name"] for s in stages]
    document = {
        "target": target, "intermediate": chain, "model": model, "model_label": model, "seed": seed,
        "metrics": {language: {"accuracy": value} for language, value in scores.items()},
        "average": {"accuracy": score}, "score": score, "scores": scores,
        "intermediate_metrics": {s["name"]: (dev or {}).get(s["name"], {"accuracy": 50.0}) for s in stages},
        "stages": {f"{i}-{s['name']}": {"dev_score": (dev or {}).get(s["name"], {}).get("accuracy", 50.0),
                                        "reused": i > 1} for i, s in enumerate(stages, start=1)},
        "intermediate_stages": stages, "run_key": f"{target}{chain}{seed}{setting}{model}",
        "setting_key": setting, "target_key": target_key or f"{target}-t",
        "config": {"intermediate": {s["name"]: {"tasks": s["tasks"]} for s in stages},
                   "target": {"name": target, "eval_split": "test"}},
        **({"retrieval": {"recipe": recipe}} if recipe else {}),
    }
    folder = root / target / ("+".join(chain) or "none") / model / f"seed{seed}-{setting}{recipe or ''}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(document), encoding="utf-8")
    return folder


def test_gains_mean_std_and_seed_counts(tmp_path) -> None:
    for seed, value in ((1, 70.0), (2, 72.0), (3, 74.0)):
        write_run(tmp_path, "xnli", [stage("squad")], seed, value)
    for seed, value in ((1, 68.0), (2, 70.0)):
        write_run(tmp_path, "xnli", [], seed, value)
    gains = report.gains(report.load_runs(tmp_path)).set_index("setup")
    assert gains.loc["squad", "mean"] == 72.0 and gains.loc["squad", "std"] == 2.0 and gains.loc["squad", "n"] == 3
    assert gains.loc["squad", "baseline"] == 69.0 and gains.loc["squad", "gain"] == 3.0
    assert gains.loc["none", "gain"] == 0.0
    table = report.main_table(report.load_runs(tmp_path))
    assert table.loc[("m", "squad"), ("xnli", "gain")] == 3.0
    assert table.loc[("m", "squad"), ("xnli", "n")] == 3
    text = main_cells(table, lambda cell: f"**{cell}**").set_index("intermediate")
    assert text.loc["squad", "xnli"] == "**72.00 ± 2.00 (+3.00)**"  # the best mean of the column, bold
    assert text.loc["none", "xnli"] == "69.00 ± 1.41"  # the baseline shows no gain
    assert text.loc["squad", "seeds"] == "3" and text.loc["none", "seeds"] == "2"


def test_the_baseline_is_averaged_over_the_same_seeds_when_it_has_them(tmp_path) -> None:
    for seed, value in ((1, 60.0), (2, 62.0), (3, 70.0)):
        write_run(tmp_path, "xnli", [], seed, value)
    for seed, value in ((1, 61.0), (2, 65.0)):
        write_run(tmp_path, "xnli", [stage("squad")], seed, value)
    runs = report.load_runs(tmp_path)
    row = report.gains(runs).set_index("setup").loc["squad"]
    assert row["baseline"] == 61.0 and row["baseline_n"] == 2 and row["gain"] == 2.0  # seeds 1 and 2, paired
    assert report.main_table(runs).loc[("m", "squad"), ("classification", "gain")] == 2.0


def test_unmatched_baselines_are_listed_never_mixed(tmp_path) -> None:
    write_run(tmp_path, "xnli", [], 1, 60.0, setting="s1")
    write_run(tmp_path, "xnli", [stage("squad")], 1, 65.0, setting="s1")
    write_run(tmp_path, "xnli", [stage("squad")], 1, 90.0, setting="s2")  # e.g. another lr: no baseline
    write_run(tmp_path, "tydiqa", [stage("squad")], 1, 40.0, target_key="tydiqa-de")  # only de evaluated
    write_run(tmp_path, "tydiqa", [], 1, 30.0, target_key="tydiqa-all")
    runs = report.load_runs(tmp_path)
    assert sorted(runs.model.unique()) == ["m [s1]", "m [s2]"]  # one model, two settings: kept apart
    gains = report.gains(runs)
    matched = gains[(gains.model == "m [s1]") & (gains.setup == "squad") & (gains.target == "xnli")]
    assert matched.gain.tolist() == [5.0]
    missing = report.unmatched(runs)
    assert len(missing) == 2
    assert set(missing.model) == {"m [s1]", "m [s2]"}
    assert gains[gains.model == "m [s2]"].gain.isna().all()


def test_retrieval_recipes_are_labelled_and_matched_apart(tmp_path) -> None:
    for recipe, key, base in (("frozen_encoder", "lareqa-frozen", 20.0), ("dual_encoder", "lareqa-dual", 40.0)):
        write_run(tmp_path, "lareqa", [], 1, base, target_key=key, recipe=recipe)
        write_run(tmp_path, "lareqa", [stage("squad")], 1, base + 3.0, target_key=key, recipe=recipe)
    runs = report.load_runs(tmp_path)
    assert sorted(runs.column.unique()) == ["lareqa", "lareqa (dual_encoder)"]
    gains = report.gains(runs)
    assert sorted(gains[gains.setup == "squad"].gain.tolist()) == [3.0, 3.0]  # each against its own recipe
    assert report.unmatched(runs).empty


def test_benchmark_averages_only_when_every_task_is_there(tmp_path) -> None:
    for index, target in enumerate(XTREME_TASKS):
        write_run(tmp_path, target, [], 1, 50.0 + index)
        write_run(tmp_path, target, [stage("squad")], 1, 52.0 + index)
    write_run(tmp_path, "xnli", [stage("mnli")], 1, 60.0)  # mnli: xnli only
    table = report.main_table(report.load_runs(tmp_path))
    assert table.loc[("m", "none"), ("XTREME", "mean")] == pytest.approx(np.mean([50.0 + i for i in range(9)]))
    assert table.loc[("m", "squad"), ("XTREME", "gain")] == pytest.approx(2.0)
    assert math.isnan(table.loc[("m", "mnli"), ("XTREME", "mean")])  # not every task: no overall score
    assert table.loc[("m", "mnli"), ("classification", "mean")] == 60.0  # but its category mean
    assert ("XTREME-R", "mean") not in table.columns  # no run has every XTREME-R task
    assert list(table.index.get_level_values("setup"))[0] == "none"


def test_missing_values_are_shown_missing_not_zero(tmp_path) -> None:
    write_run(tmp_path, "xnli", [], 1, 50.0)
    write_run(tmp_path, "xnli", [stage("squad")], 1, float("nan"))
    write_run(tmp_path, "pawsx", [stage("squad")], 1, 70.0)
    out = tmp_path / "report"
    built = report.build_report([tmp_path], out)
    text = main_cells(built.tables["main"], str).set_index("intermediate")
    assert text.loc["squad", "xnli"] == "–" and text.loc["none", "pawsx"] == "–"
    csv = pd.read_csv(out / "main.csv")
    squad = csv[csv.setup == "squad"].iloc[0]
    assert math.isnan(squad["xnli mean"]) and math.isnan(squad["xnli gain"])
    # squad averages pawsx, the baseline xnli: their classification means are not comparable.
    assert text.loc["squad", "classification"] == "70.00"
    assert math.isnan(built.tables["main"].loc[("m", "squad"), ("classification", "gain")])


def test_correlation_matches_scipy(tmp_path) -> None:
    dev = {"squad": 70.0, "mnli": 80.0, "qqp": 75.0, "hellaswag": 40.0, "cosmosqa": 55.0}
    gain = {"squad": 2.0, "mnli": 3.5, "qqp": 1.0, "hellaswag": -1.0, "cosmosqa": 0.5}
    write_run(tmp_path, "xnli", [], 1, 60.0)
    for task in dev:
        write_run(tmp_path, "xnli", [stage(task)], 1, 60.0 + gain[task], dev={task: {"accuracy": dev[task]}})
    table = report.correlation(report.load_runs(tmp_path))
    row = table[(table.target == "xnli") & (table.metric == "accuracy")].iloc[0]
    x, y = list(dev.values()), list(gain.values())
    assert row["points"] == 5
    assert row["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert row["spearman p"] == pytest.approx(stats.spearmanr(x, y).pvalue)
    assert row["pearson"] == pytest.approx(stats.pearsonr(x, y).statistic)
    assert row["pearson p"] == pytest.approx(stats.pearsonr(x, y).pvalue)
    assert row["pearson ci low"] <= row["pearson"] <= row["pearson ci high"]
    assert -1.0 <= row["spearman ci low"] <= row["spearman ci high"] <= 1.0
    pooled = table[(table.target == "pooled") & (table.metric == "accuracy")].iloc[0]
    assert pooled["spearman"] == pytest.approx(row["spearman"])  # one target: pooled = that target


def test_correlation_with_too_few_points_says_so(tmp_path) -> None:
    write_run(tmp_path, "xnli", [], 1, 60.0)
    write_run(tmp_path, "xnli", [stage("squad")], 1, 61.0)
    write_run(tmp_path, "xnli", [stage("mnli")], 1, 62.0)
    row = report.correlation(report.load_runs(tmp_path)).iloc[0]
    assert math.isnan(row["spearman p"]) and "at least 3" in row["note"]


@pytest.mark.parametrize("test", ["wilcoxon", "ttest"])
def test_order_paired_test_with_three_seeds_and_one(tmp_path, test) -> None:
    a = {1: 70.0, 2: 71.0, 3: 75.0}
    b = {1: 68.0, 2: 70.5, 3: 71.0}
    for seed in a:
        write_run(tmp_path, "xnli", [stage("squad"), stage("mnli")], seed, a[seed])
        write_run(tmp_path, "xnli", [stage("mnli"), stage("squad")], seed, b[seed])
    write_run(tmp_path, "tydiqa", [stage("squad"), stage("mnli")], 1, 40.0)
    write_run(tmp_path, "tydiqa", [stage("mnli"), stage("squad")], 1, 41.0)
    table = report.order(report.load_runs(tmp_path), test).set_index("target")
    xnli = table.loc["xnli"]
    differences = np.array([a[s] - b[s] for s in a]) * (1 if xnli["order a"] == "squad → mnli" else -1)
    assert xnli["seeds"] == 3
    assert xnli["difference"] == pytest.approx(differences.mean())
    assert xnli["std"] == pytest.approx(differences.std(ddof=1))
    first, second = (np.array(list(values.values())) for values in ((a, b) if xnli["order a"] == "squad → mnli"
                                                                      else (b, a)))
    expected = stats.wilcoxon(first - second) if test == "wilcoxon" else stats.ttest_rel(first, second)
    assert xnli["p"] == pytest.approx(expected.pvalue)
    tydiqa = table.loc["tydiqa"]
    assert tydiqa["seeds"] == 1 and math.isnan(tydiqa["p"]) and "at least 2" in tydiqa["note"]


def test_scale_is_matched_on_seeds(tmp_path) -> None:
    for model, seeds, lift in (("base", (1, 2), 2.0), ("large", (1, 2, 3), 1.0)):
        for seed in seeds:
            write_run(tmp_path, "xnli", [], seed, 50.0 + seed, model=model, setting=model)
            write_run(tmp_path, "xnli", [stage("squad")], seed, 50.0 + seed + lift * seed, model=model, setting=model)
    table = report.scale(report.load_runs(tmp_path))
    row = table.loc[("squad", "xnli")]
    assert row["seeds"] == (1, 2)  # seed 3 only exists for large
    assert row["gain base"] == pytest.approx(3.0) and row["gain large"] == pytest.approx(1.5)
    assert row["difference"] == pytest.approx(-1.5)
    assert report.scale(report.load_runs(tmp_path), ["large", "base"]).loc[("squad", "xnli"), "difference"] == 1.5


def test_diversity_groups_by_domains_and_kind(tmp_path) -> None:
    write_run(tmp_path, "xnli", [], 1, 50.0)
    write_run(tmp_path, "xnli", [stage("squad")], 1, 51.0)
    write_run(tmp_path, "xnli", [stage("mnli")], 1, 53.0)
    write_run(tmp_path, "xnli", [stage("commonsense", ["hellaswag", "cosmosqa"])], 1, 54.0)
    write_run(tmp_path, "xnli", [stage("mix", ["squad", "mnli"])], 1, 56.0)
    table = report.diversity(report.load_runs(tmp_path)).loc["m"]
    assert table.loc["single-domain task", "xnli"] == 2.0 and table.loc["single-domain task", "setups"] == 2
    assert table.loc["single-domain mixture", "xnli"] == 4.0
    assert table.loc["multi-domain mixture", "xnli"] == 6.0
    assert table.loc["multi-domain mixture", "classification (mean)"] == 6.0


def test_retrieval_by_training_languages_and_family(tmp_path) -> None:
    write_run(tmp_path, "tatoeba", [], 1, 40.0, scores={"de": 50.0, "sw": 30.0})
    write_run(tmp_path, "tatoeba", [stage("squad")], 1, 41.0, scores={"de": 51.0, "sw": 31.0})
    write_run(tmp_path, "tatoeba", [stage("mlm", languages=["en", "de", "sw"])], 1, 45.0,
              scores={"de": 52.0, "sw": 38.0})
    write_run(tmp_path, "xnli", [], 1, 50.0)
    write_run(tmp_path, "xnli", [stage("squad")], 1, 52.0)
    runs = report.load_runs(tmp_path)
    table = report.retrieval(runs).loc["m"]
    assert list(table.columns) == ["setups", "tatoeba"]  # xnli is not a retrieval target
    assert table.loc["English-only", "tatoeba"] == 1.0 and table.loc["multilingual", "tatoeba"] == 5.0
    families = report.retrieval_families(runs).loc["m"]
    assert families.loc["Niger-Congo", ("tatoeba", "multilingual")] == 8.0
    assert families.loc["Indo-European", ("tatoeba", "English-only")] == 1.0
    languages = report.per_language(runs, "tatoeba")
    assert languages.loc["sw", ("m", "mlm")] == 8.0 and languages.loc["de", ("m", "squad")] == 1.0


def test_tidy_table_has_one_row_per_metric(tmp_path) -> None:
    write_run(tmp_path, "xnli", [stage("squad")], 1, 60.0, scores={"en": 70.0, "de": 50.0})
    tidy = report.load(tmp_path)
    target = tidy[tidy.source == "target"]
    assert set(target.language) == {"en", "de", "average"}
    assert target[(target.language == "de") & (target.metric == "score")].value.tolist() == [50.0]
    assert target[(target.language == "average") & (target.metric == "score")].value.tolist() == [60.0]
    dev = tidy[tidy.source == "intermediate"]
    assert dev[["task", "language", "metric", "value"]].values.tolist() == [["squad", "dev", "accuracy", 50.0]]


def test_damaged_and_duplicate_results(tmp_path) -> None:
    write_run(tmp_path / "a", "xnli", [], 1, 50.0)
    damaged = tmp_path / "a" / "broken" / "results.json"
    damaged.parent.mkdir()
    damaged.write_text('{"target": "xnli", "sco', encoding="utf-8")
    runs = report.load_runs(tmp_path / "a")
    assert len(runs) == 1 and runs.attrs["skipped"] == [str(damaged.resolve())]
    write_run(tmp_path / "b", "xnli", [], 1, 51.0)
    with pytest.raises(StiltsError, match="give only one of these folders"):
        report.load_runs(tmp_path / "a", tmp_path / "b")
    with pytest.raises(StiltsError, match="no readable results.json"):
        report.load_runs(tmp_path / "a" / "broken")


def test_cli_writes_the_report_of_one_run(tmp_path, capsys) -> None:
    write_run(tmp_path / "runs", "xnli", [stage("squad")], 1, 60.0)  # one run, no baseline: still a report
    assert report_main([str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    assert "| m       | squad" in printed and "60.00" in printed
    folder = tmp_path / "runs" / "report"
    assert {"main.csv", "main.md", "main.tex", "report.md", "results.csv", "heatmap_m.png", "heatmap_m.svg",
            "unmatched.csv"} <= {path.name for path in folder.iterdir()}
    assert "Nothing to show: no setup was run with two models." in (folder / "report.md").read_text()


def test_cli_bad_input_is_one_error_line(tmp_path, capsys) -> None:
    assert report_main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nowhere" in err
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty")]) == 2
    assert "no readable results.json" in capsys.readouterr().err


def test_wandb_logs_the_report_tables_and_plots_offline(tmp_path, monkeypatch) -> None:
    from stilts.report.wandb_log import log_report

    monkeypatch.setenv("WANDB_MODE", "offline")
    write_run(tmp_path / "runs", "xnli", [], 1, 50.0)
    write_run(tmp_path / "runs", "xnli", [stage("squad")], 1, 52.0)
    built = report.build_report([tmp_path / "runs"], tmp_path / "report")
    log_report(built, group="sweep-test")
    offline = list((tmp_path / "report" / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    logged = {path.name.split("_")[0] for path in offline[0].glob("files/media/table/tables/*.table.json")}
    assert {"main", "gains", "diversity", "correlation"} <= logged
    assert list(offline[0].glob("files/media/images/plots/heatmap_m*.png"))
    # wandb's service writes the run's transaction log after finish() returns, late on a loaded machine.
    transaction_log = next(offline[0].glob("run-*.wandb"))
    deadline = time.monotonic() + 60
    while b"sweep-test" not in transaction_log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert b"sweep-test" in transaction_log.read_bytes()
