"""`python -m stilts.report`: a sweep's results.json files as the paper's tables, plots and
statistics (pandas, scipy, matplotlib/seaborn). Reads results files only, never the training code.

    from stilts import report
    runs = report.load_runs("outputs/runs")      # one row per run
    report.main_table(runs)                       # the paper's table (mean, std, n, gain)
    report.heatmap(runs, "xlm-roberta-large")     # a Figure
"""

from stilts.report.build import Report, build_report
from stilts.report.load import load, load_runs, tidy
from stilts.report.notebook import sweep_folder
from stilts.report.plots import correlation_scatter, grouped_bars, heatmap
from stilts.report.render import main_cells, markdown
from stilts.report.stats import correlation, correlation_points, order
from stilts.report.tables import (diversity, gain_matrix, gains, main_table, per_language, retrieval,
                                  retrieval_families, scale, seed_gains, unmatched)
from stilts.report.transfer import load_rankings, ranking_check

__all__ = [
    "Report", "build_report", "correlation", "correlation_points", "correlation_scatter", "diversity", "gain_matrix",
    "gains", "grouped_bars", "heatmap", "load", "load_rankings", "load_runs", "main_cells", "main_table", "markdown",
    "order", "per_language", "ranking_check", "retrieval", "retrieval_families", "scale", "seed_gains",
    "sweep_folder", "tidy", "unmatched",
]
