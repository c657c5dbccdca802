"""`python -m stilts.sweep status DIR [--sweep ID] [--watch [SECONDS]] [--json]`: the state of every
job of a sweep, read from its folder (no scheduler needed)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from stilts.errors import StiltsError
from stilts.sweep.status import find_sweep, format_status, read_sweep, summary


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stilts.sweep", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="per job: done, skipped, running (stage, step), waiting for a stage "
                                                "lock, failed (first error line) or not started")
    status.add_argument("dir", help="the sweep dir (hydra.sweep.dir, e.g. outputs/runs) or one sweep's records folder "
                                    "(<sweep dir>/.sweeps/<sweep id>)")
    status.add_argument("--sweep", help="the sweep id (default: the latest sweep in DIR)")
    status.add_argument("--watch", nargs="?", const=10.0, type=float, metavar="SECONDS",
                        help="refresh every SECONDS (default 10) until every job has ended")
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.watch is not None and args.watch <= 0:
        print(f"error: --watch {args.watch}: the refresh interval must be a positive number of seconds", file=sys.stderr)
        sys.exit(2)
    try:
        folder = find_sweep(args.dir, args.sweep)
    except StiltsError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    while True:
        sweep = read_sweep(folder, ended=False)
        text = json.dumps(summary(sweep), indent=1) if args.json else format_status(sweep)
        if args.watch is not None and sys.stdout.isatty():
            print("\033[2J\033[H", end="")
        print(text, flush=True)
        if args.watch is None or sweep.finished:
            break
        time.sleep(args.watch)


if __name__ == "__main__":
    main()
