"""The LightningModule: one encoder, a head per task (one, or several in a multi-task stage), the
paper's optimisation recipe, and evaluation that gathers predictions from every rank before
scoring them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from stilts.errors import DivergedError
from stilts.heads.networks import HeadOutput


@dataclass(frozen=True)
class OptimSettings:
    """AdamW with linear warm-up then decay; no weight decay on biases and LayerNorm."""

    lr: float = 1e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    adam_epsilon: float = 1e-8


class Scorer(Protocol):
    """What evaluation needs from the data side (the DataModule implements it). An evaluation set is
    keyed by (dataloader index, set index): a loader may hold several sets, its batches name each
    feature's set under "eval_set"."""

    def eval_keys(self, stage: str) -> list[tuple[int, int]]:
        """The keys of every set `stage` ("val" or "test") scores."""

    def score(self, stage: str, key: tuple[int, int],
              feature_predictions: dict[int, Any]) -> tuple[str, dict[str, float], float | None]:
        """(eval set name, metrics, task score) from per-feature predictions."""

    def selection_score(self, scores: dict[str, float]) -> float:
        """The model-selection score from the scores of every dev set."""


def _gather(items: list[Any]) -> list[Any]:
    """Every rank's items on every rank (DDP); a no-op on one process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return items
    gathered: list[list[Any]] = [[] for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather_object(gathered, items)
    return [item for rank_items in gathered for item in rank_items]


class StiltsModule(pl.LightningModule):
    def __init__(self, encoder: nn.Module, heads: Mapping[str, nn.Module], optim: OptimSettings = OptimSettings()) -> None:
        """`heads` by task name; a batch of a multi-task stage names its task under "task"."""
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(dict(heads))
        self.optim = optim
        self.results: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        self.scores: dict[str, dict[str, float]] = defaultdict(dict)
        self.token_counts = torch.zeros(2, dtype=torch.long)  # real, total (training batches)
        self._predictions: list[tuple[tuple[int, int], int, Any]] = []  # (eval set key, feature, prediction)
        self.train()  # from_pretrained leaves encoders in eval mode, which would silence dropout

    def head(self, batch: Mapping[str, Any]) -> nn.Module:
        return self.heads[batch["task"]]

    def forward(self, batch: dict[str, torch.Tensor]) -> HeadOutput:
        input_ids, mask = batch["input_ids"], batch["attention_mask"]
        hidden = self.encoder(input_ids=input_ids.view(-1, input_ids.shape[-1]),
                              attention_mask=mask.view(-1, mask.shape[-1])).last_hidden_state
        return self.head(batch)(hidden, batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        output = self(batch)
        self._stop_if_diverged(output.loss)
        mask = batch["attention_mask"]
        self.token_counts += torch.tensor([int(mask.sum()), mask.numel()])
        self.log("train/loss", output.loss, prog_bar=True, batch_size=mask.shape[0])
        if len(self.heads) > 1:
            self.log(f"train/{batch['task']}/loss", output.loss, batch_size=mask.shape[0])
        self.log("train/real_token_fraction", mask.float().mean(), batch_size=mask.shape[0])
        return output.loss

    def _stop_if_diverged(self, loss: torch.Tensor) -> None:
        """A non-finite loss ends training before its backward pass can spoil the weights; every
        DDP rank takes the same decision."""
        finite = bool(torch.isfinite(loss.detach()).all())
        if self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            raise DivergedError(f"non-finite loss ({float(loss.detach()):g}) at step {self.global_step} "
                                f"with lr {self.optim.lr:g}")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Never checkpoint non-finite weights (the last good checkpoint stays); keep the token counts."""
        if not all(bool(torch.isfinite(p).all()) for p in self.parameters()):
            raise DivergedError(f"non-finite weights at step {self.global_step} with lr {self.optim.lr:g}")
        checkpoint["stilts_token_counts"] = self.token_counts.clone()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "stilts_token_counts" in checkpoint:
            self.token_counts = checkpoint["stilts_token_counts"].clone()

    def _collect(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> None:
        output = self(batch)
        predictions = self.head(batch).predict(output.logits, batch)
        self._predictions.extend(((dataloader_idx, eval_set), feature, prediction) for eval_set, feature, prediction
                                 in zip(batch["eval_set"].tolist(), batch["feature_index"].tolist(), predictions))

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(batch, dataloader_idx)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(batch, dataloader_idx)

    def _score(self, stage: str) -> None:
        scorer: Scorer = self.trainer.datamodule
        by_set: dict[tuple[int, int], dict[int, Any]] = defaultdict(dict)
        # One gather for every set (a rank may hold no feature of some set); DistributedSampler repeats
        # samples to even out ranks, and the dict keeps one per feature.
        for key, feature, prediction in _gather(self._predictions):
            by_set[tuple(key)][feature] = prediction
        self._predictions.clear()
        logged = {}
        for key in scorer.eval_keys(stage):
            name, metrics, score = scorer.score(stage, key, by_set[key])
            self.results[stage][name] = metrics
            if score is None:  # predicted, not scored: the set has no gold
                continue
            self.scores[stage][name] = score
            logged.update({f"{stage}/{name}/{metric}": float(value) for metric, value in metrics.items()})
            logged[f"{stage}/{name}/score"] = score
        if self.trainer.is_global_zero:
            # Straight to the loggers: these numbers are reports, not monitors, and logging hundreds of
            # them through self.log cost more than scoring them. Every rank holds the same numbers.
            for logger in self.loggers:
                logger.log_metrics(logged, step=self.global_step)
        if stage == "val" and self.scores[stage]:
            # Model selection: the dev sets' scores combined as the data module says (their mean).
            self.log("val/score", scorer.selection_score(dict(self.scores[stage])), prog_bar=True, sync_dist=True,
                     add_dataloader_idx=False)

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")

    def configure_optimizers(self) -> dict[str, Any]:
        no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layer_norm.weight", "layer_norm.bias")
        named = [(name, p) for name, p in self.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if not n.endswith(no_decay)], "weight_decay": self.optim.weight_decay},
            {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.optim.lr, eps=self.optim.adam_epsilon)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = get_linear_schedule_with_warmup(optimizer, int(self.optim.warmup_ratio * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
