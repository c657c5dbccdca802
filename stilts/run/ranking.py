"""Ranking intermediate tasks for a target before training them (`python -m stilts.rank`).

Each candidate is an intermediate setup as `python -m stilts.train +intermediate=NAME` with the same
settings would train it. Its estimates (higher is better, `stilts.eval.transferability`):
- `text_similarity`: TextEmb (Vu et al. 2020, as Poth et al. 2021 use it): the cosine of the mean
  last-layer token state of the candidate's and of the target's English training text, under the
  pretrained encoder. Needs nothing trained.
- `logme`, `h_score`, `transrate`: of the target's English training rows (`stilts.data.probe`) under
  the candidate's trained encoder, read from the stage store when that stage exists; the same
  estimates under the pretrained encoder are reported beside them, so their difference is what the
  intermediate stage changed.
- `leep`: the candidate's trained head applied to the target's rows (a classification head on
  sequences, a tagging head on tokens).
Examples are sub-sampled (`rank.max_examples`, `rank.max_features`) with the run's seed. Nothing is
trained and the stage store is only read.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file

from stilts.store import locks, stages
from stilts.checks import training_config
from stilts.data.probe import ProbeData, probe_data, sample_examples
from stilts.errors import StiltsError
from stilts.heads import FeaturizeSettings, HeadType, head_of
from stilts.eval.transferability import (DATA_SIZE, ESTIMATES, FEATURE_ESTIMATORS, STAGE_ESTIMATES,
                                         embedding_similarity, leep)
from stilts.store.identity import comparison_keys, model_tag
from stilts.mixtures import intermediate_preset
from stilts.model.encoder import load_encoder, load_tokenizer, resolve_pretrained
from stilts.model.probe import ProbeOutput, leep_mismatch, probe_encoder
from stilts.run.plan import plan_stages
from stilts.store.stages import Stage, StageTask
from stilts.tasks import get_task
from stilts.tasks.common.sources import load_examples

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """An intermediate setup and the stage `stilts.train` would train for it (its last one)."""
    name: str
    stages: list[Stage]
    summary: dict[str, Any] | None  # the finished stage's stage.json; None while it is not trained
    estimates: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # why an estimate is missing
    seconds: float = 0.0

    @property
    def stage(self) -> Stage:
        return self.stages[-1]

    @property
    def tasks(self) -> list[StageTask]:
        return [task for stage in self.stages for task in stage.tasks.values()]


@dataclass
class Probe:
    """What every probe shares: the settings, the tokenizer and the device."""
    cfg: DictConfig
    tokenizer: Any
    device: str

    def run(self, encoder, data: ProbeData, head: torch.nn.Module | None = None,
            head_type: HeadType | None = None) -> ProbeOutput:
        settings = self.cfg.rank
        return probe_encoder(encoder, data.sequences, data.rows, self.tokenizer.pad_token_id,
                             batch_size=settings.batch_size, pooling=settings.pooling, dtype=settings.dtype,
                             device=self.device, head=head, head_type=head_type)

    def training_examples(self, task: StageTask) -> dict[str, list[dict[str, Any]]]:
        """The task's training examples in every language it trains on."""
        return {language: load_examples(task.spec, "train", language, self.cfg.data.source, self.cfg.data.root)
                for language in task.languages}

    def examples(self, task: StageTask, count: int) -> list[dict[str, Any]]:
        """`count` examples drawn from the task's training data in every language it trains on."""
        per_language = max(1, count // len(task.languages))
        return [example for examples in self.training_examples(task).values()
                for example in sample_examples(examples, per_language, self.cfg.seed)]


def _check_device(cfg: DictConfig) -> None:
    """rank.device names a device this machine has (its type is checked by the schema)."""
    if cfg.rank.device is None:
        return
    try:
        device = torch.device(cfg.rank.device)
    except (RuntimeError, TypeError):
        raise StiltsError(f"rank.device must be null (automatic), cpu, cuda or cuda:N, not {cfg.rank.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise StiltsError(f"rank.device={cfg.rank.device} but torch sees no CUDA device; use rank.device=cpu or null")


def plan_candidate(cfg: DictConfig, name: str, pretrained: str) -> Candidate:
    """The candidate's stages as `stilts.train +intermediate=NAME` plans them, and whether the last is trained."""
    candidate_cfg = training_config(cfg)
    candidate_cfg.intermediate = intermediate_preset(name)
    planned = plan_stages(candidate_cfg, pretrained, intermediate_only=True)
    return Candidate(name, planned, stages.finished(planned[-1].directory, set_aside_damaged=False))


def _feature_estimates(output: ProbeOutput, labels: np.ndarray) -> dict[str, float]:
    return {name: estimate(output.features, labels) for name, estimate in FEATURE_ESTIMATORS.items()}


def _text_similarity(probe: Probe, encoder, candidate: Candidate, target_text: ProbeOutput) -> float:
    """TextEmb of the candidate's training text (its tasks' examples share rank.max_examples) and the target's."""
    count = max(1, probe.cfg.rank.max_examples // len(candidate.tasks))
    texts = [probe.run(encoder, probe_data(task.spec, probe.examples(task, count), probe.tokenizer,
                                           FeaturizeSettings.from_settings(task.settings), labelled=False))
             for task in candidate.tasks]
    return embedding_similarity(np.concatenate([text.text for text in texts]), target_text.text,
                                np.concatenate([text.tokens for text in texts]), target_text.tokens)


def _leep_blocker(candidate: Candidate, rows: np.ndarray) -> str | None:
    """Why the candidate's trained head gives no distribution per target row (LEEP's input); None when it does."""
    stage = candidate.stage
    if len(stage.tasks) != 1:
        return f"{stage.label} is a mixture stage: it has one head per task, none for the setup"
    return leep_mismatch(head_of(next(iter(stage.tasks.values())).spec), rows)


def _stage_head(candidate: Candidate, hidden_size: int) -> tuple[torch.nn.Module, HeadType]:
    """The single-task stage's trained head and its type."""
    (label, task), = candidate.stage.tasks.items()
    labels = candidate.summary["tasks"][label]["labels"]
    head_type = head_of(task.spec)
    head = head_type.module(hidden_size, len(labels))
    head.load_state_dict(load_file(str(candidate.stage.head_file(label))))
    return head, head_type


def _stage_estimates(probe: Probe, candidate: Candidate, target: ProbeData) -> None:
    """LogME, H-score, TransRate and LEEP of the target's rows under the candidate's trained stage."""
    with locks.in_use(candidate.stage.directory):  # not removed (stilts.store gc) while it loads
        encoder = load_encoder(candidate.stage.trained_encoder)
        blocker = _leep_blocker(candidate, target.rows)
        head, kind = (None, None) if blocker else _stage_head(candidate, encoder.config.hidden_size)
    output = probe.run(encoder, target, head, kind)
    candidate.estimates.update(_feature_estimates(output, target.labels))
    if blocker:
        candidate.notes["leep"] = blocker
    else:
        candidate.estimates["leep"] = leep(output.probabilities, target.labels)
    del encoder, head
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _check_method(method: str, candidates: Sequence[Candidate], target: ProbeData, stages_dir: str) -> None:
    """An order by a stage estimate needs a candidate that has it; otherwise the table would rank nothing."""
    if method not in STAGE_ESTIMATES:
        return
    trained = [candidate for candidate in candidates if candidate.summary is not None]
    if not trained:
        raise StiltsError(f"method={method} reads trained intermediate stages, and no candidate has one in "
                          f"{stages_dir} for these settings and seed; train them first (python -m stilts.train -m "
                          f"'+intermediate={','.join(c.name for c in candidates)}' with the same settings) or rank "
                          "with method=text_similarity")
    blockers = [_leep_blocker(candidate, target.rows) for candidate in trained]
    if method == "leep" and all(blockers):
        raise StiltsError(f"method=leep needs a trained stage whose head labels the target's rows, and no trained "
                          f"candidate's does ({trained[0].name}: {blockers[0]}); rank with method=logme")


def _ranked(candidates: Sequence[Candidate], method: str) -> list[Candidate]:
    """Best first by `method`; candidates without it last, in the order given."""
    def key(candidate: Candidate) -> tuple[bool, float]:
        value = candidate.estimates.get(method)
        return (value is None or not math.isfinite(value), -(value or 0.0))
    return sorted(candidates, key=key)


def rank(cfg: DictConfig) -> dict[str, Any]:
    """The ranking document of `cfg` (conf/rank.yaml): every candidate's estimates, best first by `method`."""
    _check_device(cfg)
    started = time.perf_counter()
    spec = get_task(cfg.target.name)
    pretrained = resolve_pretrained(cfg.model.name_or_path, cfg.paths.cache_dir, cfg.model.get("tiny"))
    device = cfg.rank.device or ("cuda" if torch.cuda.is_available() else "cpu")
    probe = Probe(cfg, load_tokenizer(pretrained), device)
    target_task = StageTask(spec, OmegaConf.to_container(cfg.target, resolve=True), (spec.train_language,))
    examples = probe.examples(target_task, cfg.rank.max_examples)
    target = probe_data(spec, examples, probe.tokenizer, FeaturizeSettings.from_settings(cfg.target))
    rows = target.subsample_rows(cfg.rank.max_features, cfg.seed)
    if len(np.unique(rows.labels)) < 2:
        raise StiltsError(f"{spec.name}: the {len(rows.labels)} sampled training rows all have one class; raise "
                          "rank.max_examples")
    candidates = [plan_candidate(cfg, name, pretrained) for name in cfg.candidates]
    _check_method(cfg.method, candidates, rows, cfg.paths.stages_dir)
    encoder = load_encoder(pretrained)
    target_text = probe.run(encoder, rows)  # every sampled sequence's text, and the rows' features
    baseline = _feature_estimates(target_text, rows.labels)
    shared = time.perf_counter() - started
    log.info("%s: %d training rows (%s) from %d examples; pretrained encoder: %s (%.1f s)", spec.name,
             len(rows.labels), head_of(spec).row_labels, len(examples),
             ", ".join(f"{name} {value:.4g}" for name, value in baseline.items()), shared)
    for number, candidate in enumerate(candidates, start=1):
        begun = time.perf_counter()
        candidate.estimates[DATA_SIZE] = float(sum(len(examples) for task in candidate.tasks
                                                   for examples in probe.training_examples(task).values()))
        candidate.estimates["text_similarity"] = _text_similarity(probe, encoder, candidate, target_text)
        if candidate.summary is not None:
            _stage_estimates(probe, candidate, rows)
        else:
            candidate.notes.update({name: f"no trained stage {candidate.stage.directory.name} in "
                                          f"{cfg.paths.stages_dir} (or a damaged one: see the log)"
                                    for name in STAGE_ESTIMATES})
        candidate.seconds = time.perf_counter() - begun
        log.info("candidate %d/%d %s: %s (%.1f s)", number, len(candidates), candidate.name,
                 ", ".join(f"{name} {value:.4g}" for name, value in candidate.estimates.items()), candidate.seconds)
    ranked = _ranked(candidates, cfg.method)
    training = training_config(cfg)
    return {
        "target": spec.name, "model": cfg.model.name_or_path,
        "model_label": cfg.model.get("label") or model_tag(cfg.model.name_or_path), "seed": cfg.seed,
        "method": cfg.method, **comparison_keys(training),
        "target_rows": {"examples": len(examples), "sequences": len(target.sequences), "rows": len(rows.labels),
                        "classes": int(len(np.unique(rows.labels))), "labels": head_of(spec).row_labels,
                        "pooling": cfg.rank.pooling},
        "pretrained": baseline,
        "candidates": [_candidate_record(candidate, position, baseline, cfg.method)
                       for position, candidate in enumerate(ranked, start=1)],
        "seconds": {"shared": shared, "total": time.perf_counter() - started},
        "device": device, "settings": OmegaConf.to_container(cfg.rank, resolve=True),
        "stages_dir": str(Path(cfg.paths.stages_dir).expanduser()),
    }


def _candidate_record(candidate: Candidate, position: int, baseline: Mapping[str, float], method: str) -> dict[str, Any]:
    """The candidate's entry in ranking.json; an estimate that came out NaN or infinite is missing, with a note."""
    estimates = {name: candidate.estimates.get(name) for name in ESTIMATES}
    for name, value in estimates.items():
        if value is not None and not math.isfinite(value):
            estimates[name] = None
            candidate.notes[name] = f"{value} (degenerate features: too few rows or a constant feature)"
    return {
        "candidate": candidate.name,
        "rank": position if estimates[method] is not None else None,
        "tasks": [task.spec.name for task in candidate.tasks],
        "stage": candidate.stage.directory.name if candidate.summary is not None else None,
        "estimates": estimates,
        "change": {name: None if estimates[name] is None else estimates[name] - value for name, value in baseline.items()},
        "notes": candidate.notes,
        "seconds": candidate.seconds,
    }
