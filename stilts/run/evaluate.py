"""Evaluating a run's target zero-shot: a trained target from its exported files on every requested
language (predictions in the official format), or a retrieval target on sentence embeddings of the
last encoder (pretrained, the intermediate stages', or the recipe's dual encoder)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from safetensors.torch import load_file

from stilts.errors import StiltsError
from stilts.store.files import write_text_atomic
from stilts.model.embeddings import EmbeddingSettings, SentenceEmbedder
from stilts.model.encoder import load_encoder, load_tokenizer
from stilts.heads import head_of
from stilts.model.module import StiltsModule
from stilts.run.data import make_datamodule
from stilts.run.export import write_predictions
from stilts.run.loggers import finish_loggers, make_loggers
from stilts.run.trainer import make_trainer
from stilts.store.stages import EncoderSource, Stage
from stilts.tasks.spec import TaskSpec

log = logging.getLogger(__name__)
# results.json's retrieval.recipe values (stilts.report groups retrieval numbers by them)
FROZEN_ENCODER, FINE_TUNED_ENCODER, DUAL_ENCODER = "frozen_encoder", "fine_tuned_encoder", "dual_encoder"


def evaluate_target(cfg: DictConfig, stage: Stage, summary: Mapping[str, Any], languages: Sequence[str],
                    run_name: str, predictions_dir: Path
                    ) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, str]]:
    """Zero-shot evaluation of the exported target model on every requested language:
    (metrics per language, task score per language, the languages predicted but not scored because
    their files carry no gold, and why); predictions go to predictions_dir."""
    labels = summary["tasks"][stage.label]["labels"]
    tokenizer, encoder = load_tokenizer(stage.trained_encoder), load_encoder(stage.trained_encoder)
    head = head_of(stage.spec).module(encoder.config.hidden_size, len(labels))
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
    if recipe and head_of(recipe[-1].spec).embeds_with_pooler:
        return DUAL_ENCODER
    return FINE_TUNED_ENCODER if recipe else FROZEN_ENCODER


def check_retrieval_recipe(cfg: DictConfig, planned: Sequence[Stage], target: TaskSpec) -> None:
    """Before any training: a retrieval target's dual encoder embeds with its own pooler, so a layer
    or pooling chosen for the target would be silently ignored; refuse it."""
    if target.retrieve is None:
        return
    if retrieval_recipe(planned) == DUAL_ENCODER and (cfg.target.get("layer") is not None
                                                         or cfg.target.pooling != "cls"):
        raise StiltsError(f"target {cfg.target.name}: the dual encoder ({planned[-1].label}) embeds with its trained "
                          "pooler on the first token of the last layer; set target.layer=null and target.pooling=cls")


def _retrieval_embedding(cfg: DictConfig, planned: Sequence[Stage], encoder) -> tuple[EmbeddingSettings, Any, str]:
    """(embedding settings, pooler or None, what embeds): a dual-encoder stage embeds with its own
    pooler on the last layer; otherwise target.layer (default model.retrieval_layer) and target.pooling."""
    layers = encoder.config.num_hidden_layers
    common = {"batch_size": cfg.target.batch_size, "max_length": cfg.target.max_length, "dtype": cfg.target.dtype}
    if retrieval_recipe(planned) == DUAL_ENCODER:
        stage = planned[-1]
        head = head_of(stage.spec).module(encoder.config.hidden_size, 0)
        head.load_state_dict(load_file(str(stage.head_file(stage.label))))
        return EmbeddingSettings(layer=layers, pooling="cls", **common), head.embed, f"dual-encoder pooler of {stage.name}"
    layer = cfg.target.get("layer")
    layer = cfg.model.get("retrieval_layer") if layer is None else layer
    embedder = f"encoder of {planned[-1].name}" if planned else "pretrained encoder"
    return EmbeddingSettings(layer=layers if layer is None else layer, pooling=cfg.target.pooling, **common), None, embedder


def evaluate_retrieval(cfg: DictConfig, spec: TaskSpec, planned: Sequence[Stage], encoder_source: EncoderSource,
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


def evaluate(cfg: DictConfig, target: TaskSpec, planned: Sequence[Stage], summaries: Mapping[str, Any],
              encoder_source: EncoderSource, languages: Sequence[str], run_name: str, staging: Path
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
