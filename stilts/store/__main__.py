"""`python -m stilts.store du|ls|verify|gc [STAGES_DIR] [--runs DIR ...]`: the stage store at a glance.

  ls       each stage: role, tasks, state, encoder kept or dropped, size, the runs that use it
  du       each stage's bytes by kind (encoder, heads, predictions, metadata; resume state and
           leftovers apart), totals per role
  verify   every finished stage's files against their checksums; exit 1 naming the damaged ones
  gc       remove what no run references and no job can use (--dry-run lists it first)

STAGES_DIR defaults to outputs/stages (paths.stages_dir); run folders are found in the `runs`
folder beside it, or given with --runs. ls, du and verify only read: run them while sweeps run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from stilts.store.files import human_bytes, read_json
from stilts.store import cleanup, stages
from stilts.store.inventory import KINDS, StageEntry, default_runs, scan


def _role(entry: StageEntry) -> str:
    return entry.role or "-"


def role_totals(entries: Sequence[StageEntry]) -> dict[str, dict[str, int]]:
    """Per role (and in all): stages, bytes held, resume state, leftovers."""
    totals: dict[str, dict[str, int]] = {}
    for entry in entries:
        for role in (_role(entry), "total"):
            row = totals.setdefault(role, {"stages": 0, "bytes": 0, "resume_bytes": 0, "leftover_bytes": 0})
            row["stages"] += 1
            row["bytes"] += entry.size
            row["resume_bytes"] += entry.resume_bytes
            row["leftover_bytes"] += entry.leftover_bytes
    return totals


def _totals_table(entries: Sequence[StageEntry]) -> list[str]:
    lines = [f"{'role':<14}{'stages':>7}{'size':>11}{'resume':>11}{'leftovers':>11}"]
    totals = role_totals(entries)
    for role in sorted(totals, key=lambda role: (role == "total", role)):
        row = totals[role]
        lines.append(f"{role:<14}{row['stages']:>7}{human_bytes(row['bytes']):>11}"
                     f"{human_bytes(row['resume_bytes']):>11}{human_bytes(row['leftover_bytes']):>11}")
    return lines


def _state(entry: StageEntry) -> str:
    state = entry.state + (f" @{entry.resume_step}" if entry.state == "unfinished" and entry.resume_step else "")
    return state + (", in use" if entry.in_use else "")


def format_ls(entries: Sequence[StageEntry], stages_dir: Path) -> str:
    width = max([5] + [len(entry.name) for entry in entries])
    lines = [f"stage store {stages_dir}: {len(entries)} stages",
             f"{'stage':<{width}}  {'role':<14}{'tasks':<22}{'state':<22}{'encoder':<9}{'size':>10}{'runs':>6}"]
    for entry in entries:
        tasks = "+".join(entry.tasks) or "-"
        lines.append(f"{entry.name:<{width}}  {_role(entry):<14}{tasks[:21]:<22}{_state(entry)[:21]:<22}"
                     f"{entry.encoder:<9}{human_bytes(entry.size):>10}{len(entry.used_by):>6}")
        lines.extend(f"{'':<{width}}    used by {run}" for run in entry.used_by)
        if entry.problem:
            lines.append(f"{'':<{width}}    damaged: {entry.problem}")
    return "\n".join(lines + [""] + _totals_table(entries))


def format_du(entries: Sequence[StageEntry], stages_dir: Path) -> str:
    width = max([5] + [len(entry.name) for entry in entries])
    header = f"{'stage':<{width}}  {'role':<14}" + "".join(f"{kind:>12}" for kind in KINDS)
    lines = [f"stage store {stages_dir}: bytes by kind (resume state and leftovers are not the stage)",
             header + f"{'size':>11}{'resume':>11}{'leftovers':>11}"]
    for entry in entries:
        lines.append(f"{entry.name:<{width}}  {_role(entry):<14}"
                     + "".join(f"{human_bytes(entry.bytes.get(kind, 0)):>12}" for kind in KINDS)
                     + f"{human_bytes(entry.size):>11}{human_bytes(entry.resume_bytes):>11}"
                     f"{human_bytes(entry.leftover_bytes):>11}")
    return "\n".join(lines + [""] + _totals_table(entries))


def verify(entries: Sequence[StageEntry]) -> list[str]:
    """Check every finished stage against its checksums, a line each as it goes; the damaged ones.
    A stage whose record changed while it was read (its encoder dropped meanwhile) is read again."""
    damaged = []
    checked = [entry for entry in entries if entry.state in ("finished", "damaged")]
    for number, entry in enumerate(checked, start=1):
        started = time.monotonic()
        summary = read_json(entry.directory / stages.STAGE_FILE)
        problem = stages.checksum_problem(entry.directory, summary)
        if problem is not None and read_json(entry.directory / stages.STAGE_FILE) != summary:
            problem = stages.checksum_problem(entry.directory, read_json(entry.directory / stages.STAGE_FILE))
        print(f"[{number}/{len(checked)}] {entry.name}: " + (f"DAMAGED: {problem}" if problem else
              f"ok ({human_bytes(entry.size)}, {time.monotonic() - started:.1f} s)"), flush=True)
        if problem:
            damaged.append(entry.name)
    skipped = [entry.name for entry in entries if entry.state == "training"]
    if skipped:
        print(f"not verified (being trained): {', '.join(skipped)}")
    print(f"verified {len(checked)} finished stages: " + (f"{len(damaged)} damaged" if damaged else "all intact"))
    return damaged


def gc(entries: Sequence[StageEntry], runs_dirs: Sequence[Path], stages_dir: Path, options: set[str],
       dry_run: bool) -> int:
    """Print what goes (and what stays for lack of a flag), remove it unless `dry_run`; bytes freed."""
    chosen, held = cleanup.select(cleanup.plan(entries, runs_dirs, stages_dir), options)
    verb = "would remove" if dry_run else "removing"
    print(f"stage store {stages_dir}: {verb} {len(chosen)} items ({human_bytes(sum(r.bytes for r in chosen))})")
    freed = 0
    for removal in chosen:
        why_not = None if dry_run else cleanup.remove(removal)
        freed += 0 if why_not else removal.bytes
        mark = f"  (skipped: {why_not})" if why_not else ""
        print(f"  {human_bytes(removal.bytes):>10}  {removal.reason}: {removal.path}{mark}", flush=True)
    for option in sorted({removal.option for removal in held}):
        kept = [removal for removal in held if removal.option == option]
        print(f"kept: {len(kept)} {cleanup.OPTIONAL[option]} ({human_bytes(sum(r.bytes for r in kept))}); "
              f"--{option} removes {'them' if len(kept) > 1 else 'it'}")
        for removal in kept:
            print(f"  {human_bytes(removal.bytes):>10}  {removal.path}")
    print(f"would free {human_bytes(sum(r.bytes for r in chosen))}" if dry_run else f"freed {human_bytes(freed)}")
    return freed


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("stages_dir", nargs="?", type=Path, default=Path("outputs/stages"),
                        help="the stage store (paths.stages_dir; default outputs/stages)")
    common.add_argument("--runs", action="append", type=Path, default=None, metavar="DIR",
                        help="a folder of run folders using the store (default: the runs folder beside it)")
    parser = argparse.ArgumentParser(prog="python -m stilts.store", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("ls", "stages, their state and the runs using them"),
                            ("du", "bytes per stage by kind, totals per role")):
        command = commands.add_parser(name, parents=[common], help=help_text)
        command.add_argument("--json", action="store_true", help="print JSON")
    commands.add_parser("verify", parents=[common], help="check finished stages against their checksums")
    collect = commands.add_parser("gc", parents=[common], help="remove what no run references and no job can use")
    collect.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    collect.add_argument("--unfinished", action="store_true", help="also unfinished stages a rerun would resume")
    collect.add_argument("--checkpoints", action="store_true", help="also resume checkpoints kept past export")
    collect.add_argument("--unreferenced", action="store_true", help="also finished stages no results.json uses")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stages_dir: Path = args.stages_dir
    if not stages_dir.is_dir():
        print(f"error: no stage store at {stages_dir}: give the folder of paths.stages_dir "
              "(default outputs/stages, beside outputs/runs)", file=sys.stderr)
        return 2
    runs_dirs = args.runs if args.runs is not None else default_runs(stages_dir)
    missing = [str(folder) for folder in runs_dirs if not folder.is_dir()]
    if missing:
        print(f"error: --runs {missing[0]}: no such folder", file=sys.stderr)
        return 2
    if args.command == "gc" and args.unreferenced and not runs_dirs:
        print(f"error: gc --unreferenced needs the run folders that use {stages_dir} (--runs DIR): without them "
              "every stage looks unreferenced", file=sys.stderr)
        return 2
    entries = scan(stages_dir, runs_dirs)
    if args.command in ("ls", "du"):
        if args.json:
            print(json.dumps({"stages_dir": str(stages_dir), "runs": [str(folder) for folder in runs_dirs],
                              "stages": [entry.as_json() for entry in entries],
                              "totals": role_totals(entries)}, indent=2))
        else:
            print((format_ls if args.command == "ls" else format_du)(entries, stages_dir))
        return 0
    if args.command == "verify":
        damaged = verify(entries)
        if damaged:
            print(f"error: {len(damaged)} damaged stage(s): {', '.join(damaged)}; a run that needs one trains it "
                  f"again, `python -m stilts.store gc {stages_dir}` removes them", file=sys.stderr)
            return 1
        return 0
    options = {name for name in cleanup.OPTIONAL if getattr(args, name)}
    gc(entries, runs_dirs, stages_dir, options, args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
