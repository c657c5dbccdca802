"""The X-STILTs pipeline: intermediate stage(s) -> target stage -> zero-shot evaluation.

One stage is one Lightning `Trainer.fit` with its own folder in the shared stage store, keyed by a
hash of everything that determines its weights: the stage it starts from (or the pretrained
model's content), task, tunables, trainer precision, the data's content, seed and stilts' stage
format; never where folders happen to be. A finished stage is reused, not retrained, so one
intermediate model serves every target of a sweep; parallel jobs train a shared stage once. The
next stage loads only the encoder; heads start fresh. The target is always evaluated from the
exported files; retrieval targets have no training stage and are scored on embeddings of the
last encoder. A run's folder is named by its config's identity, so distinct settings never share
one, and a finished run is skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from safetensors.torch import load_file

from stilts import jobstate
from stilts.store import encoders, stages
from stilts.data.datamodule import FEATURES_VERSION
from stilts.errors import StiltsError
from stilts.files import file_record, read_json, replace_folder, tree_records, write_json_atomic, write_text_atomic
from stilts.identity import STAGE_FORMAT, comparison_keys, config_identity, digest, model_tag, run_key, trainer_identity
from stilts.model.embeddings import EmbeddingSettings, SentenceEmbedder
from stilts.model.encoder import load_encoder, load_tokenizer, resolve_pretrained
from stilts.model.heads import build_head
from stilts.model.module import StiltsModule
from stilts.checks import check_no_evaluation_data
from stilts.results import RESULTS_FILE, build_results, describe_stage, format_table, intermediate_metrics, read_results
from stilts.mixtures import expand_intermediate, is_mixture
from stilts.store.stages import Stage, StageTask
from stilts.tasks import get_task
from stilts.tasks.sources import check_languages, find_files, hub_parts, uses_hub
from stilts.tasks.spec import TaskSpec
from stilts.training import (finish_loggers, fit_stage, log_run, make_datamodule, make_loggers, make_trainer,
                             write_predictions)

log = logging.getLogger(__name__)
# Evaluation gathers every rank's predictions and drops the sampler's duplicates (StiltsModule._score).
warnings.filterwarnings("ignore", message=r".*Using `DistributedSampler` with the dataloaders.*")
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(lambda record: "Tip:" not in record.getMessage())
EVALUATION_ONLY = ("languages", "eval_split", "before")  # a target's settings that never change weights


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def pretrained_identity(source: str) -> dict[str, Any]:
    """A local model folder by its content (moving or copying it changes nothing); a Hub model by id."""
    if Path(source).is_dir():
        return {"content": digest(tree_records(source))}
    return {"hub": source}


def data_identity(cfg: DictConfig, spec: TaskSpec, languages: Sequence[str]) -> dict[str, Any]:
    """What a stage trains and selects on: the content of its train and dev files in every
    language it trains on (not where the data root is), or its Hub datasets (repository, revision,
    config, split: another source or revision is another stage)."""
    identity: dict[str, list] = {}
    for split in ("train", "dev"):
        for language in languages:
            if uses_hub(spec, split, language, cfg.data.source, cfg.data.root):
                identity.setdefault("hub", []).extend([part.path, part.revision, part.name(language), part.splits[split]]
                                                      for part in hub_parts(spec, split, language))
            else:
                root = Path(cfg.data.root).expanduser()
                identity.setdefault(split, []).extend(file_record(path)
                                                      for path in find_files(spec, split, language, root))
    return identity


def _stage_task(name: str, settings: Mapping[str, Any], role: str) -> StageTask:
    spec = get_task(name)
    languages = settings.get("languages") if role == "intermediate" else None
    return StageTask(spec, settings, tuple(languages or [spec.train_language]))


def _tunables(task: StageTask, role: str) -> dict[str, Any]:
    """Settings that change weights: a target's languages are evaluation languages, an
    intermediate task's are training languages."""
    skip = EVALUATION_ONLY if role != "intermediate" else tuple(k for k in EVALUATION_ONLY if k != "languages")
    return {k: v for k, v in task.settings.items() if k not in skip}


@dataclass(frozen=True)
class PlannedStage:
    """A stage before its key: its label, role, tasks (one, or a mixture's) and mixture settings."""

    label: str
    role: str
    tasks: dict[str, StageTask]
    mixture: dict[str, Any] | None


def stage_tasks(cfg: DictConfig, intermediate_only: bool = False) -> list[PlannedStage]:
    """Intermediate stages in the order given (single tasks or mixtures), the target's own `before`
    stages (part of its recipe, e.g. XTREME-R trains XCOPA on SIQA then COPA), then the target
    stage (retrieval targets have none); `intermediate_only` gives the intermediate stages alone.
    What each stage trains on, without reading any data (`stilts.prepare` checks that data)."""
    intermediate = expand_intermediate(cfg.get("intermediate") or {})  # idempotent
    stages_in_order = [(name, settings, "intermediate") for name, settings in intermediate.items()]
    if not intermediate_only:
        stages_in_order += [(name, settings, "target-recipe")
                            for name, settings in (cfg.target.get("before") or {}).items()]
        if get_task(cfg.target.name).retrieve is None:
            stages_in_order.append((cfg.target.name, cfg.target, "target"))
    planned = []
    for label, settings, role in stages_in_order:
        resolved = OmegaConf.to_container(settings, resolve=True) if OmegaConf.is_config(settings) else dict(settings)
        if is_mixture(resolved):
            tasks = {name: _stage_task(name, member, role) for name, member in resolved["tasks"].items()}
            planned.append(PlannedStage(label, role, tasks, {k: v for k, v in resolved.items() if k != "tasks"}))
        else:
            planned.append(PlannedStage(label, role, {label: _stage_task(label, resolved, role)}, None))
    return planned


def plan_stages(cfg: DictConfig, pretrained: str | None = None, intermediate_only: bool = False) -> list[Stage]:
    """The stages of `stage_tasks` with their keys, which chain through the plan. `pretrained` is
    what the first stage loads (the resolved model source); intermediate stages' keys never depend
    on the target."""
    identity = config_identity(cfg)
    shared = {"format": STAGE_FORMAT, "features": FEATURES_VERSION, "train": identity["train"],
              "trainer": trainer_identity(identity["trainer"]), "seed": cfg.seed, "source": cfg.data.source}
    parent: dict[str, Any] = {"pretrained": pretrained_identity(pretrained or cfg.model.name_or_path)}
    planned = []
    for index, stage in enumerate(stage_tasks(cfg, intermediate_only), start=1):
        described = {name: {"settings": _tunables(task, stage.role),
                            "data": data_identity(cfg, task.spec, task.languages)}
                     for name, task in stage.tasks.items()}
        key = digest({**shared, "parent": parent, "stage": stage.label, "mixture": stage.mixture, "tasks": described})
        planned.append(Stage(index, stage.role, stage.label, stage.tasks, key,
                             Path(cfg.paths.stages_dir) / f"{stage.label}-{key}", stage.mixture))
        parent = {"stage": key}
    return planned


def _waiting_for(what: str) -> Callable[[dict[str, Any]], None]:
    """Records in the sweep job's state that it waits for a lock another job holds."""
    return lambda owner: jobstate.update(state="waiting", stage=what, waiting_for=owner)


def _trained_again(stage: Stage, summary: Mapping[str, Any]) -> None:
    """Says whether a stage trained again after its encoder was dropped has the first training's
    weights (its checksums were kept in stage.json)."""
    differ = stages.check_retrained(stage.directory, summary)
    if differ == []:
        log.info("Stage %s: trained again exactly: its encoder and heads match the checksums recorded at its "
                 "first training", stage.name)
    elif differ:
        log.warning("Stage %s: trained again, but %s differ from its first training (nondeterministic kernels): "
                    "runs evaluated before used the first weights", stage.name, ", ".join(differ[:3]))


def acquire_stage(cfg: DictConfig, stage: Stage, encoder_source: str, pretrained: str, run_name: str,
                  need_encoder: bool = True) -> tuple[dict[str, Any], str]:
    """The stage's summary and how it was acquired ("reused", "trained", "retrained"): reused when
    finished and intact (and still holding its encoder when this run needs it), else trained here
    under the stage's lock (a job that needs a stage another job is training waits, then reuses
    it); a target stage whose encoder was dropped is trained again, with the same key and weights.
    Under DDP, rank 0 decides and the other ranks follow it."""
    if rank_zero_only.rank != 0:
        summary = stages.await_rank_zero(stage.directory, stage.name, need_encoder)
        if summary is None:
            fit_stage(cfg, stage, encoder_source, pretrained, run_name)
            _barrier()
            return read_json(stage.directory / stages.STAGE_FILE), "trained"
        return summary, "reused"
    summary = stages.finished(stage.directory)
    if summary is None or (need_encoder and not stages.has_encoder(summary)):
        with stages.training_lock(stage.directory, f"stage {stage.name}", on_wait=_waiting_for(stage.name)):
            jobstate.update(state="running", stage=stage.name, waiting_for=None)
            summary = stages.finished(stage.directory)  # another job may have finished it meanwhile
            if summary is not None and need_encoder and not stages.has_encoder(summary):
                log.info("Stage %s: its encoder was dropped once its run was evaluated (keep_target_encoders=false) "
                         "and this run needs it: training the stage again (same key, same weights)", stage.name)
                stages.begin_retraining(stage.directory)
                summary = None
            if summary is None:
                stages.claim(stage.directory)
                try:
                    fit_stage(cfg, stage, encoder_source, pretrained, run_name)
                finally:
                    stages.unclaim(stage.directory)
                _barrier()
                summary = read_json(stage.directory / stages.STAGE_FILE)
                retrained = (stage.directory / stages.RETRAINING_FILE).exists()
                _trained_again(stage, summary)
                return summary, "retrained" if retrained else "trained"
    log.info("Stage %s: reusing %s (already trained with the same settings)", stage.name, stage.directory)
    return summary, "reused"


def evaluate_target(cfg: DictConfig, stage: Stage, summary: Mapping[str, Any], languages: Sequence[str],
                    run_name: str, predictions_dir: Path
                    ) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, str]]:
    """Zero-shot evaluation of the exported target model on every requested language:
    (metrics per language, task score per language, the languages predicted but not scored because
    their files carry no gold, and why); predictions go to predictions_dir."""
    labels = summary["tasks"][stage.label]["labels"]
    tokenizer, encoder = load_tokenizer(str(stage.encoder_dir)), load_encoder(str(stage.encoder_dir))
    head = build_head(stage.spec.head, encoder.config.hidden_size, len(labels))
    head.load_state_dict(load_file(str(stage.head_file(stage.label))))
    module = StiltsModule(encoder, {stage.label: head})
    datamodule = make_datamodule(cfg, stage.tasks[stage.label], tokenizer, train=False, languages=languages,
                                 labels=labels)
    loggers = make_loggers(cfg, f"zero-shot-{stage.spec.name}", "evaluation", run_name)
    trainer = make_trainer(cfg, stage, loggers, [])
    failed = True
    try:
        trainer.test(module, datamodule=datamodule, verbose=False)
        failed = False
    finally:
        finish_loggers(loggers, failed=failed)
    if rank_zero_only.rank == 0:
        write_predictions(stage.spec, datamodule, "test", predictions_dir)
    return dict(module.results["test"]), dict(module.scores["test"]), datamodule.no_gold


def retrieval_recipe(planned: Sequence[Stage]) -> str:
    """Which recipe a retrieval number comes from: `frozen_encoder` (X-STILTs: the encoder after the
    intermediate stages, no target training), `fine_tuned_encoder` (the target's recipe trains the
    encoder first, e.g. XTREME-R's Tatoeba after SQuAD) or `dual_encoder` (a contrastive stage whose
    pooler embeds, XTREME-R's LAReQA and Mewsli-X)."""
    recipe = [stage for stage in planned if stage.role == "target-recipe"]
    if recipe and recipe[-1].spec.head == "dual_encoder":
        return "dual_encoder"
    return "fine_tuned_encoder" if recipe else "frozen_encoder"


def check_retrieval_recipe(cfg: DictConfig, planned: Sequence[Stage]) -> None:
    """Before any training: a dual encoder embeds with its own pooler, so a layer or pooling chosen
    for the target would be silently ignored; refuse it."""
    if retrieval_recipe(planned) == "dual_encoder" and (cfg.target.get("layer") is not None
                                                         or cfg.target.pooling != "cls"):
        raise StiltsError(f"target {cfg.target.name}: the dual encoder ({planned[-1].label}) embeds with its trained "
                          "pooler on the first token of the last layer; set target.layer=null and target.pooling=cls")


def _retrieval_embedding(cfg: DictConfig, planned: Sequence[Stage], encoder) -> tuple[EmbeddingSettings, Any, str]:
    """(embedding settings, pooler or None, what embeds): a dual-encoder stage embeds with its own
    pooler on the last layer; otherwise target.layer (default model.retrieval_layer) and target.pooling."""
    layers = encoder.config.num_hidden_layers
    common = {"batch_size": cfg.target.batch_size, "max_length": cfg.target.max_length, "dtype": cfg.target.dtype}
    if retrieval_recipe(planned) == "dual_encoder":
        stage = planned[-1]
        head = build_head("dual_encoder", encoder.config.hidden_size, 0)
        head.load_state_dict(load_file(str(stage.head_file(stage.label))))
        return EmbeddingSettings(layer=layers, pooling="cls", **common), head.embed, f"dual-encoder pooler of {stage.name}"
    layer = cfg.target.get("layer")
    layer = cfg.model.get("retrieval_layer") if layer is None else layer
    embedder = f"encoder of {planned[-1].name}" if planned else "pretrained encoder"
    return EmbeddingSettings(layer=layers if layer is None else layer, pooling=cfg.target.pooling, **common), None, embedder


def evaluate_retrieval(cfg: DictConfig, spec: TaskSpec, planned: Sequence[Stage], encoder_source: str,
                       languages: Sequence[str], predictions_dir: Path
                       ) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, str], dict[str, Any]]:
    """Score a retrieval target on sentence embeddings of the last encoder (pretrained, or from the
    last stage): (metrics per language, task score per language, the languages without gold, how it
    embedded). Retrieval files are local: data=local, or data.root beside data=hub."""
    if cfg.data.root is None:
        raise StiltsError(f"{spec.name} reads local files only: use data=local data.root=DIR (or data=sample), or give "
                          "data.root=DIR beside data=hub")
    encoder = load_encoder(encoder_source)
    settings, pooler, embedder = _retrieval_embedding(cfg, planned, encoder)
    log.info("%s: embedding with layer %d of %s (%s)", spec.name, settings.layer, encoder_source,
             embedder if pooler is not None else f"{settings.pooling} pooling")
    embed = SentenceEmbedder(encoder, load_tokenizer(encoder_source), settings, pooler=pooler)
    target_settings = OmegaConf.to_container(cfg.target, resolve=True)
    results = spec.retrieve(embed, Path(cfg.data.root).expanduser(), languages, cfg.target.eval_split, target_settings)
    for language, (_, suffix, text) in results.items():
        write_text_atomic(predictions_dir / f"{cfg.target.eval_split}-{language}{suffix}", text)
    metrics = {language: result[0] for language, result in results.items()}
    scores = {language: float(spec.score_key(values)) for language, values in metrics.items()
              if set(spec.main_metrics[:1]) <= set(values)}
    no_gold = {language: f"{cfg.target.eval_split} files under {cfg.data.root}: no gold {spec.main_metrics[0]} "
               "(XTREME's download keeps no test gold)" for language in metrics if language not in scores}
    how = {"recipe": retrieval_recipe(planned), "embedder": embedder, "layer": settings.layer,
           "pooling": settings.pooling, "text_format": target_settings.get("text_format", "plain")}
    return metrics, scores, no_gold, how


def _link_stages(run_dir: Path, planned: Sequence[Stage]) -> None:
    """The run folder points at its stage folders (shared across runs of a sweep)."""
    links = run_dir / "stages"
    links.mkdir(parents=True, exist_ok=True)
    for stage in planned:
        link = links / stage.name
        target = os.path.relpath(stage.directory, links)
        if link.is_symlink() and os.readlink(link) != target:
            link.unlink()
        if not link.is_symlink():
            link.symlink_to(target)


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """One writer per run folder (rank 0 only: the other DDP ranks work inside its run)."""
    if rank_zero_only.rank != 0:
        yield
        return
    with stages.training_lock(run_dir, f"run {run_dir}", on_wait=_waiting_for(f"run {run_dir.name}")):
        yield


def _finished_run(results_path: Path, key: str, overwrite: bool) -> dict[str, Any] | None:
    """The results of this very run when they exist and are intact (and overwrite is off). A
    damaged results.json, or one made with another config, is kept aside as results.previous.json."""
    if not results_path.exists():
        return None
    previous = read_results(results_path)
    if previous is not None and previous["run_key"] == key and not overwrite:
        log.info("%s exists: skipping this run (overwrite=true to redo it)", results_path)
        return previous
    reason = ("is damaged" if previous is None else "is redone (overwrite=true)" if previous["run_key"] == key
              else "was made with another config")
    log.info("%s %s: running again (finished stages are reused)", results_path, reason)
    if rank_zero_only.rank == 0:
        os.replace(results_path, results_path.with_name("results.previous.json"))
    return None


NEEDED_VARIABLE = "STILTS_ENCODERS_NEEDED"


def _encoders_needed_by_job(planned: Sequence[Stage], key: str) -> list[bool]:
    """Rank 0 works out which encoders the run reads; the ranks Lightning's launcher starts inherit
    its answer (so every rank takes the same decisions), ranks SLURM starts with it work it out alike."""
    inherited = json.loads(os.environ.get(NEEDED_VARIABLE) or "{}")
    if rank_zero_only.rank != 0 and inherited.get("run") == key:
        return inherited["needed"]
    needed = encoders.needed(planned)
    if rank_zero_only.rank == 0:
        os.environ[NEEDED_VARIABLE] = json.dumps({"run": key, "needed": needed})
    return needed


def _reading(planned: Sequence[Stage]) -> contextlib.ExitStack:
    """Rank 0 holds every stage of its run as in use (shared locks) while the run reads them."""
    stack = contextlib.ExitStack()
    if rank_zero_only.rank == 0:
        for stage in planned:
            stack.enter_context(stages.in_use(stage.directory))
    return stack


def _evaluate(cfg: DictConfig, target: TaskSpec, planned: Sequence[Stage], summaries: Mapping[str, Any],
              encoder_source: str, languages: Sequence[str], run_name: str, staging: Path
              ) -> tuple[dict, dict, dict, dict[str, Any] | None] | None:
    """(metrics, scores, languages without gold, how retrieval embedded) of the run's target; None
    on DDP ranks other than 0 (they only help evaluate)."""
    if target.retrieve is not None:
        if rank_zero_only.rank != 0:  # DDP helpers of the training stages have nothing to embed
            return None
        return evaluate_retrieval(cfg, target, planned, encoder_source, languages, staging)
    metrics, scores, no_gold = evaluate_target(cfg, planned[-1], summaries[planned[-1].name], languages, run_name,
                                               staging)
    return (metrics, scores, no_gold, None) if rank_zero_only.rank == 0 else None


def run_pipeline(cfg: DictConfig) -> tuple[dict[str, Any], bool]:
    """Run (or resume) the whole pipeline of one config: (its results document, whether the run
    had finished before and was skipped). DDP ranks other than 0 get an empty document."""
    run_dir = Path(cfg.paths.run_dir)
    results_path = run_dir / RESULTS_FILE
    key = run_key(cfg)
    target = get_task(cfg.target.name)
    languages = check_languages(target, cfg.target.languages or target.languages)
    with _run_lock(run_dir):
        finished = _finished_run(results_path, key, bool(cfg.overwrite))
        if finished is not None:
            return finished, True
        run_name = cfg.paths.run_name
        encoder_source = resolve_pretrained(cfg.model.name_or_path, cfg.paths.cache_dir, cfg.model.get("tiny"))
        pretrained = encoder_source
        planned = plan_stages(cfg, pretrained)
        check_no_evaluation_data(cfg, planned, target, languages)
        if target.retrieve is not None:
            check_retrieval_recipe(cfg, planned)
        staging = run_dir / f".predictions-{os.getpid()}"
        summaries, how = {}, {}
        with _reading(planned):
            needed = _encoders_needed_by_job(planned, key)
            for stage, need_encoder in zip(planned, needed):
                summaries[stage.name], how[stage.name] = acquire_stage(cfg, stage, encoder_source, pretrained,
                                                                       run_name, need_encoder)
                encoder_source = str(stage.encoder_dir)
            evaluation = _evaluate(cfg, target, planned, summaries, encoder_source, languages, run_name, staging)
        if evaluation is None:
            return {}, False
        if staging.exists():
            replace_folder(staging, run_dir / "predictions")
        if not cfg.keep_target_encoders:
            encoders.drop_target_encoders(planned)
        results = _results(cfg, key, target, planned, summaries, how, languages, evaluation)
        _link_stages(run_dir, planned)
        write_json_atomic(results_path, results)
        results_path.with_name("results.previous.json").unlink(missing_ok=True)
        log.info("Wrote %s", results_path)
        log_run(cfg, results, run_name)
    return results, False


def _results(cfg: DictConfig, key: str, target: TaskSpec, planned: Sequence[Stage], summaries: Mapping[str, Any],
             how: Mapping[str, str], languages: Sequence[str], evaluation: tuple) -> dict[str, Any]:
    """The run's results.json document, with what each stage holds in the store and the bytes this
    run added to it (the stages it trained; a stage trained again adds nothing new)."""
    metrics, scores, no_gold, retrieval = evaluation
    intermediate = [stage for stage in planned if stage.role == "intermediate"]
    stage_facts = {stage.name: {k: summaries[stage.name].get(k) for k in (
        "key", "dev_score", "train_real_token_fraction", "global_steps", "world_size", "resumed_from_steps")}
        | {"reused": how[stage.name] == "reused", "retrained": how[stage.name] == "retrained",
           "bytes": stages.stored_bytes(stage.directory)} for stage in planned}
    added = sum(facts["bytes"] for name, facts in stage_facts.items() if how[name] == "trained")
    return build_results(
        target=target.name,
        intermediate=[stage.label for stage in intermediate],
        model=cfg.model.name_or_path,
        model_label=cfg.model.get("label") or model_tag(cfg.model.name_or_path),
        seed=cfg.seed,
        metrics={language: metrics[language] for language in languages},
        scores=scores,
        intermediate_metrics=intermediate_metrics(intermediate, summaries),
        config=OmegaConf.to_container(cfg, resolve=True),
        no_gold=no_gold,
        extra={"run_key": key, **comparison_keys(cfg), "stages": stage_facts, "store_bytes_added": added,
               **({"retrieval": retrieval} if retrieval is not None else {}),
               "resumed": any(facts["resumed_from_steps"] for facts in stage_facts.values()),
               "intermediate_stages": [describe_stage(stage) for stage in intermediate]},
    )


def print_results(results: Mapping[str, Any], spec: TaskSpec) -> None:
    if results and rank_zero_only.rank == 0:
        print(format_table(results, columns=list(spec.main_metrics)), flush=True)
