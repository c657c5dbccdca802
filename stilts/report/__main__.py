"""`python -m stilts.report DIR... [--out REPORT_DIR]`: the report of every results.json under the
given folders; prints the main table. Bad input is one `error:` line and exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stilts.errors import StiltsError
from stilts.eval.xtreme import BENCHMARKS
from stilts.report.build import build_report
from stilts.report.stats import TESTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stilts.report",
                                     description="Tables, plots and statistics of a sweep's results.json files.")
    parser.add_argument("paths", type=Path, nargs="+",
                        help="sweep folders (searched for results.json, and ranking.json from stilts.rank) or files")
    parser.add_argument("--out", type=Path, help="where the report goes (default: the first folder's report/)")
    parser.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="xtreme",
                        help="whose categories the main table averages (default: xtreme)")
    parser.add_argument("--test", choices=sorted(TESTS), default="wilcoxon",
                        help="paired test of task order: wilcoxon (signed-rank, default) or ttest (paired t)")
    parser.add_argument("--models", nargs=2, metavar=("SMALLER", "LARGER"),
                        help="the two model labels of the scale comparison (default: the first two, sorted)")
    parser.add_argument("--wandb", action="store_true",
                        help="also log the tables and plots to a W&B run in the sweep's group")
    parser.add_argument("--wandb-group", help="the W&B group (default: the runs' logger.wandb.group)")
    parser.add_argument("--wandb-project",
                        help="the W&B project (default: the runs' logger.wandb.project, else stilts)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        report = build_report(args.paths, args.out, args.benchmark, args.test, args.models)
        if args.wandb:
            from stilts.report.wandb_log import log_report

            log_report(report, args.wandb_group, args.wandb_project)
    except StiltsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(report.main_markdown)
    print(f"\nReport: {report.folder / 'report.md'} ({len(report.files)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
