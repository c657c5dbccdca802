"""`python -m stilts.prepare`: fetch and check everything a command would read, before it is submitted.

It takes exactly the arguments of `python -m stilts.train` (`-m`, experiment presets, overrides; a
launcher given there is ignored: nothing is launched), plans every stage of every run the command
would start, and for each distinct (task, split, language) and pretrained model reads it through the
functions the runs use: Hub datasets and models are downloaded into the caches the runs read, local
files are found and parsed. It prints one table, writes it as JSON, and exits 1 naming every missing,
malformed or unreachable piece, so a 300-job sweep never dies in job 200 on a missing file. After a
successful prepare on a login node, the same sweep runs with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from tabulate import tabulate

from stilts.errors import DataMissing, HubUnreachable, StiltsError
from stilts.settings import explain
from stilts.store.files import write_json_atomic

PROBLEMS = ("missing", "malformed", "unreachable")  # statuses that make prepare exit 1


@dataclass(frozen=True, order=True)
class Need:
    """One piece of data a run reads: a task's split in one language, from a source."""

    task: str
    split: str
    language: str
    source: str
    root: str | None


@dataclass
class Checked:
    """What prepare found for one need (or model): rows, bytes, where from, and its status."""

    task: str
    split: str
    language: str
    status: str = "ok"  # ok | no gold | missing | malformed | unreachable
    rows: int | None = None
    size: int = 0
    source: str = ""
    message: str = ""
    notes: list[str] = field(default_factory=list)


# -- the jobs of a command ---------------------------------------------------------------------------------

def job_configs(overrides: Sequence[str], multirun: bool) -> list[DictConfig]:
    """The composed config of every job `stilts.train [-m] OVERRIDES` would run, as Hydra's basic
    sweeper expands it (the preset's hydra.sweeper.params, then the command line)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from stilts.sweep import sweep_jobs
    from stilts.tasks import use_search_path

    import stilts.cli.resolvers  # noqa: F401  (registers the stilts.* resolvers the configs use)

    GlobalHydra.instance().clear()
    with initialize_config_module("stilts.conf", version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        mode = RunMode.MULTIRUN if multirun else RunMode.RUN
        base = hydra.compose_config("config", list(overrides), run_mode=mode, with_log_configuration=False)
        use_search_path(base.hydra.searchpath)
        if not multirun:
            return [base]
        return [hydra.compose_config("config", job, run_mode=RunMode.RUN, with_log_configuration=False)
                for job in sweep_jobs(overrides, base.hydra.sweeper.get("params"))]


def job_needs(cfg: DictConfig) -> tuple[set[Need], tuple[str, Any]]:
    """The data needs and the pretrained model of one job, planned as `stilts.train` plans it."""
    from stilts.checks import check_config
    from stilts.mixtures import expand_intermediate
    from stilts.run.plan import stage_tasks
    from stilts.tasks import get_task
    from stilts.tasks.common.languages import target_languages

    check_config(cfg)
    with open_dict(cfg):
        cfg.intermediate = expand_intermediate(cfg.intermediate)
    source, root = cfg.data.source, cfg.data.root
    needs = {Need(name, split, language, source, root)
             for stage in stage_tasks(cfg) for name, task in stage.tasks.items()
             for language in task.languages for split in ("train", "dev")}
    target = get_task(cfg.target.name)
    languages = target_languages(cfg.target, target)
    for split in (cfg.target.eval_split, *target.tuned_on):
        needs.update(Need(target.name, split, language, source, root) for language in languages)
    tiny = OmegaConf.to_container(cfg.model.tiny, resolve=True) if cfg.model.get("tiny") else None
    model = (cfg.model.name_or_path, json.dumps(tiny, sort_keys=True) if tiny else None, str(cfg.paths.cache_dir))
    return needs, model


# -- checking one piece --------------------------------------------------------------------------------------

def _status(error: StiltsError) -> str:
    if isinstance(error, HubUnreachable):
        return "unreachable"
    return "missing" if isinstance(error, DataMissing) else "malformed"


def check_need(need: Need, evaluated: bool) -> Checked:
    """Read one need through the runs' own loader; an evaluated split without gold is a warning
    (its run predicts but does not score it), training or selection data without gold an error."""
    from stilts.tasks import get_task
    from stilts.heads import head_of
    from stilts.tasks.common.sources import describe_source, find_files, load_split, uses_hub

    spec = get_task(need.task)
    checked = Checked(need.task, need.split, need.language,
                      source=describe_source(spec, need.split, need.language, need.source, need.root))
    try:
        hub = uses_hub(spec, need.split, need.language, need.source, need.root)
        if spec.retrieve is not None:  # retrieval files are read while embedding: found and measured here
            paths = find_files(spec, need.split, need.language, Path(need.root).expanduser())
            checked.source = ", ".join(str(path.relative_to(Path(need.root).expanduser())) for path in paths)
            checked.size = sum(path.stat().st_size for path in paths)
            checked.notes.append("retrieval files: found, parsed when the run embeds them")
            return checked
        loaded = load_split(spec, need.split, need.language, need.source, need.root)
        head_of(spec).check_examples(spec, f"{spec.name} {need.split}/{need.language} ({loaded.origin})", loaded.examples)
        checked.rows, checked.size = len(loaded.examples), loaded.size
        checked.source = loaded.origin if hub else loaded.origin.replace(f"{Path(need.root).expanduser()}/", "")
        checked.notes += loaded.notes
    except StiltsError as error:
        checked.status, checked.message = _status(error), str(error)
        return checked
    reason = head_of(spec).missing_gold(spec, loaded.examples)
    if reason is not None:
        if evaluated:
            checked.status = "no gold"
            checked.message = (f"{loaded.origin}: {reason}: the run predicts it but gives no metric; score it with "
                               "target.eval_split=dev or the labelled release")
        else:
            checked.status, checked.message = "malformed", f"{loaded.origin}: {reason}: stilts trains and selects on gold"
    return checked


def check_model(name_or_path: str, tiny: str | None, cache_dir: str) -> Checked:
    """The pretrained model through the runs' loaders: downloaded into (or found in) the cache."""
    from stilts.model.encoder import load_encoder, load_tokenizer, resolve_pretrained

    checked = Checked("model", "-", "-", source=name_or_path)
    try:
        source = resolve_pretrained(name_or_path, cache_dir, json.loads(tiny) if tiny else None)
        load_tokenizer(source)
        encoder = load_encoder(source)
    except StiltsError as error:
        checked.status, checked.message = "unreachable", str(error)
        return checked
    checked.notes.append(f"{sum(parameter.numel() for parameter in encoder.parameters()) / 1e6:.1f}M parameters")
    checked.size = _model_bytes(source)
    return checked


def _model_bytes(source: str) -> int:
    folder = Path(source)
    if not folder.is_dir():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "config.json")
        folder = Path(cached).parent if isinstance(cached, str) else folder
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0


# -- the table ------------------------------------------------------------------------------------------------

def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def _worst(statuses: Iterable[str]) -> str:
    order = ("ok", "no gold", "unreachable", "malformed", "missing")
    return max(statuses, key=order.index)


def summary_rows(checked: Sequence[Checked]) -> list[dict[str, Any]]:
    """One row per (task, split): its languages, rows, bytes, sources and worst status."""
    groups: dict[tuple[str, str], list[Checked]] = {}
    for item in checked:
        groups.setdefault((item.task, item.split), []).append(item)
    rows = []
    for (task, split), items in groups.items():
        sources = list(dict.fromkeys(item.source for item in items if item.source))
        rows.append({"task": task, "split": split, "languages": " ".join(item.language for item in items),
                     "rows": (sum(item.rows for item in items if item.rows is not None)
                              if any(item.rows is not None for item in items) else None),
                     "size": sum(item.size for item in items),
                     "source": sources[0] + (f" (+{len(sources) - 1} more)" if len(sources) > 1 else "") if sources else "",
                     "status": _worst(item.status for item in items)})
    return rows


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """What the command needs, one row per task, split and source (tabulate)."""
    columns = ("task", "split", "languages", "rows", "size", "source", "status")
    cells = [[_size(row[c]) if c == "size" else row[c] for c in columns] for row in rows]
    cells = [[cell[:57] + "..." if isinstance(cell, str) and len(cell) > 60 else cell for cell in line] for line in cells]
    return tabulate(cells, headers=columns, missingval="-", disable_numparse=True,
                    colalign=["right" if c in ("rows", "size") else "left" for c in columns])


# -- the command -----------------------------------------------------------------------------------------------

def prepare(overrides: Sequence[str], multirun: bool, report: str | None = None) -> int:
    """Check every need of the command; print the table, write it as JSON; 0 when all is there."""
    configs = job_configs(overrides, multirun)
    needs: set[Need] = set()
    evaluated: set[Need] = set()
    models = set()
    for cfg in configs:
        job, model = job_needs(cfg)
        needs |= job
        target = cfg.target
        evaluated |= {need for need in job if need.task == target.name and need.split == target.eval_split}
        models.add(model)
    print(f"stilts.prepare: {len(configs)} run(s) read {len(needs)} piece(s) of data and {len(models)} model(s)",
          file=sys.stderr, flush=True)
    checked = []
    for index, model in enumerate(sorted(models, key=str), start=1):
        checked.append(check_model(*model))
        print(f"[model {index}/{len(models)}] {model[0]}: {checked[-1].status}", file=sys.stderr, flush=True)
    for index, need in enumerate(sorted(needs), start=1):
        checked.append(check_need(need, need in evaluated))
        item = checked[-1]
        print(f"[{index}/{len(needs)}] {need.task} {need.split}/{need.language}: {item.status}"
              + (f" ({item.rows} rows)" if item.rows is not None else ""), file=sys.stderr, flush=True)
    rows = summary_rows(checked)
    print(format_summary(rows), flush=True)
    problems = [item for item in checked if item.status in PROBLEMS]
    for item in checked:
        if item.status == "no gold":
            print(f"warning: {item.task} {item.split}/{item.language}: {item.message}", file=sys.stderr)
    path = Path(report) if report else Path(configs[0].paths.output_dir) / "prepare.json"
    write_json_atomic(path, {"runs": len(configs), "overrides": list(overrides), "multirun": multirun,
                             "ok": not problems, "table": rows, "pieces": [asdict(item) for item in checked]})
    print(f"wrote {path}", flush=True)
    for item in problems:
        print(f"error: {item.task} {item.split}/{item.language}: {item.status}: {item.message}", file=sys.stderr)
    if problems:
        print(f"error: {len(problems)} of {len(checked)} pieces are missing, malformed or unreachable (listed above); "
              "the runs that read them would fail", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stilts.prepare",
        description="Fetch and check the data and models of a stilts.train command before running it "
                    "(same arguments as python -m stilts.train).")
    parser.add_argument("-m", "--multirun", action="store_true", help="check every job of the sweep")
    parser.add_argument("--report", help="where to write the JSON table (default: <paths.output_dir>/prepare.json)")
    parser.add_argument("overrides", nargs="*", help="the stilts.train overrides, e.g. experiment=paper_grid")
    args = parser.parse_args(argv)
    try:
        code = prepare(args.overrides, args.multirun, args.report)
    except StiltsError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except (HydraException, OmegaConfBaseException) as error:  # the config could not be composed
        print(f"error: {explain(error)}", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.exit(code)

