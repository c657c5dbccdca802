"""stilts.report, stilts.rank and the question notebooks on real quickstart sweeps (part of the paper's
grid and the four question sweeps, run once per session through the real CLI: tests/conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient
from scipy import stats

from stilts import report
from stilts.eval.transferability import regret_at_k
from tests.test_rank import NINE, run_rank

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SETUPS = ["none", "squad", "mnli", "anli_plus", "qqp", "hellaswag", "cosmosqa", "commonsenseqa", "socialiqa", "ccg",
          "all9"]
RUNS_ITS_SWEEP = "03_task_order"  # the notebook whose test runs its sweep command (the smallest sweep)
ON_ALL_TARGETS = ["none", "squad", "all9"]  # the setups the fixture trains on all nine XTREME targets


class BuiltReport(NamedTuple):
    done: subprocess.CompletedProcess  # stilts.report's
    out: Path  # its tables and plots
    rankings: Path  # the TyDiQA ranking it read


@pytest.fixture(scope="module")
def built_report(quickstart_sweeps, stilts_cache, tmp_path_factory) -> BuiltReport:
    """The report of the sweeps' runs and of a TyDiQA ranking made from their trained stages."""
    out, rankings = tmp_path_factory.mktemp("report"), tmp_path_factory.mktemp("rankings")
    ranked = run_rank("target=tydiqa", "seed=1", "method=logme", f"paths.output_dir={quickstart_sweeps}",
                      f"hydra.run.dir={rankings}", cwd=rankings, cache=stilts_cache)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    done = subprocess.run([sys.executable, "-m", "stilts.report", str(quickstart_sweeps / "runs"), str(rankings),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    return BuiltReport(done, out, rankings)


@pytest.mark.slow
def test_report_of_the_quickstart_sweeps_writes_every_table_and_plot(built_report) -> None:
    done, out, _ = built_report
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    for setup in SETUPS:  # the main table is printed, a row per setup
        assert f"| {setup} " in done.stdout
    names = {path.name for path in out.iterdir()}
    expected = {"report.md", "results.csv", "main.csv", "main.md", "main.tex", "gains.csv", "diversity.csv",
                "scale.csv", "order.csv", "correlation.csv", "retrieval.csv", "retrieval_families.csv",
                "languages_tydiqa.csv", "heatmap_tiny.png", "heatmap_tiny.svg", "heatmap_tiny-large.png",
                "correlation_tiny.png", "correlation_tiny.svg", "transfer.csv", "transfer.md"}
    assert expected <= names, expected - names
    report_md = (out / "report.md").read_text(encoding="utf-8")
    for image in ("heatmap_tiny.png", "heatmap_tiny-large.png", "correlation_tiny.png"):
        assert f"]({image})" in report_md
    assert "Nothing to show" not in report_md  # every question has data in these sweeps


@pytest.mark.slow
def test_report_numbers_of_the_quickstart_grid(built_report, quickstart_sweeps) -> None:
    out = built_report.out
    main = pd.read_csv(out / "main.csv").set_index(["model", "setup"])
    tiny = main.loc["tiny"]
    assert set(SETUPS) <= set(tiny.index)
    # Three setups have every XTREME task for each seed: an XTREME score; the others lack some tasks.
    assert tiny.loc[ON_ALL_TARGETS, "XTREME mean"].notna().all()
    assert tiny.loc[sorted(set(SETUPS) - set(ON_ALL_TARGETS)), "XTREME mean"].isna().all()
    # XNLI seeds: seed 1 for every setup, seeds 1 to 3 for the baseline (order_quickstart's paired test)
    assert (tiny.loc[SETUPS[1:], "xnli n"] == 1).all() and tiny.loc["none", "xnli n"] == 3
    assert (tiny.loc["none", ["xnli gain", "XTREME gain"]] == 0).all()
    gains = pd.read_csv(out / "gains.csv")
    row = gains[(gains.model == "tiny") & (gains.setup == "squad") & (gains.target == "tydiqa")].iloc[0]
    assert row["gain"] == pytest.approx(row["mean"] - row["baseline"])
    order = pd.read_csv(out / "order.csv")
    assert (order.seeds == 3).all() and set(order.test) == {"Wilcoxon signed-rank"}
    scale = pd.read_csv(out / "scale.csv")
    assert set(scale.setup) == {"squad", "mnli"} and set(scale.target) == {"xnli", "tydiqa"}
    retrieval = pd.read_csv(out / "retrieval.csv")
    assert set(retrieval.training) == {"English-only", "multilingual"}
    correlation = pd.read_csv(out / "correlation.csv")
    pooled = correlation[(correlation.model == "tiny") & (correlation.target == "pooled")
                         & (correlation.metric == "dev_score")].iloc[0]
    assert pooled["points"] >= 10 * 2 and -1 <= pooled["spearman"] <= 1  # ten intermediate setups, two targets


@pytest.mark.slow
def test_rank_reads_trained_stages_and_the_report_checks_the_ranking(built_report, quickstart_sweeps, tmp_path,
                                                                    stilts_cache) -> None:
    """After the quickstart grid: every candidate's trained stage gives LogME, H-score and TransRate
    of TyDiQA's rows; CCG's tagging head gives LEEP; the report sets the ranking against the real gains."""
    rankings = built_report.rankings
    document = json.loads((rankings / "ranking.json").read_text(encoding="utf-8"))
    records = {record["candidate"]: record for record in document["candidates"]}
    assert all(record["stage"] for record in records.values())
    for record in records.values():
        assert all(np.isfinite(record["estimates"][name]) for name in ("logme", "h_score", "transrate"))
        assert record["change"]["logme"] == pytest.approx(record["estimates"]["logme"] - document["pretrained"]["logme"])
    assert records["ccg"]["estimates"]["leep"] < 0
    assert records["mnli"]["estimates"]["leep"] is None and "labels sequences" in records["mnli"]["notes"]["leep"]
    logme_order = [record["estimates"]["logme"] for record in document["candidates"]]
    assert logme_order == sorted(logme_order, reverse=True)

    runs = report.load_runs(quickstart_sweeps / "runs")
    check = report.ranking_check(runs, report.load_rankings(rankings)).set_index("estimate")
    row = check.loc["logme"]
    assert row["candidates"] == 9 and row["target"] == "tydiqa" and bool(row["orders the ranking"])
    gains = report.gains(runs)
    tydiqa = gains[(gains.target == "tydiqa") & gains.setup.isin(NINE) & (gains.setting == document["setting_key"])
                   & (gains.target_setting == document["target_key"])].set_index("setup")
    assert sorted(tydiqa.index) == sorted(NINE)
    estimates = {name: records[name]["estimates"]["logme"] for name in NINE}
    expected = stats.spearmanr([estimates[name] for name in tydiqa.index], tydiqa.gain)
    assert row["spearman"] == pytest.approx(expected.statistic, nan_ok=True)
    assert row["regret@1"] == pytest.approx(regret_at_k(estimates, tydiqa["mean"].to_dict(), 1))
    built = report.build_report([quickstart_sweeps / "runs", rankings], tmp_path / "report")
    assert "transfer" in built.tables and (tmp_path / "report" / "transfer.csv").exists()

    no_head = run_rank("target=tydiqa", "seed=1", "method=leep", "candidates=[mnli,all9]",
                       f"paths.output_dir={quickstart_sweeps}", f"hydra.run.dir={tmp_path / 'leep'}", cwd=tmp_path,
                       cache=stilts_cache)
    assert no_head.returncode == 2
    assert no_head.stderr.strip().splitlines()[-1].startswith("error: method=leep needs a trained stage whose head")


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(notebook, quickstart_sweeps, stilts_cache, tmp_path, monkeypatch) -> None:
    """Each notebook runs its analysis cells on the sweeps' runs (STILTS_SWEEP: nothing is run); the
    order notebook runs its own sweep command (every run is there already: each is skipped)."""
    monkeypatch.setenv("STILTS_OUTPUT", str(quickstart_sweeps))
    monkeypatch.setenv("STILTS_CACHE", str(stilts_cache))
    if notebook.stem == RUNS_ITS_SWEEP:
        monkeypatch.delenv("STILTS_SWEEP", raising=False)
    else:
        monkeypatch.setenv("STILTS_SWEEP", str(quickstart_sweeps / "runs"))
    document = nbformat.read(notebook, as_version=4)
    assert all(not cell.get("outputs") for cell in document.cells if cell.cell_type == "code"), "commit without outputs"
    NotebookClient(document, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # the kernel inherits os.environ
    outputs = [output for cell in document.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("text/html" in output.get("data", {}) for output in outputs)  # a table was shown
