"""Parameter-efficient stages with peft: a LoRA adapter on the frozen encoder while a stage trains
(only the adapter and the heads learn), and merging an exported adapter into the encoder it was
trained on when a later stage, an evaluation or a ranking loads that stage's encoder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn


def add_adapter(encoder: nn.Module, settings: Mapping[str, Any]) -> nn.Module:
    """The encoder wrapped by peft with a fresh adapter (`Stage.peft`: method and its settings);
    its own weights are frozen. Target modules null: peft's default for the model family."""
    from peft import LoraConfig, get_peft_model

    if settings["method"] != "lora":
        raise ValueError(f"unknown adapter method {settings['method']!r}")
    config = LoraConfig(r=settings["r"], lora_alpha=settings["alpha"], lora_dropout=settings["dropout"],
                        target_modules=settings["target_modules"])
    wrapped = get_peft_model(encoder, config)
    chosen = wrapped.peft_config["default"]
    chosen.target_modules = sorted(chosen.target_modules)  # peft's set would be exported in hash order
    return wrapped


def merge_adapter(encoder: nn.Module, adapter: str) -> nn.Module:
    """The encoder with an exported adapter merged into its weights: the plain model again, so the
    next stage trains (fully, or with a new adapter) on what the adapter's stage learned."""
    from peft import PeftModel

    return PeftModel.from_pretrained(encoder, adapter).merge_and_unload()


def trainable_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, all) parameter counts."""
    counts = [(parameter.numel(), parameter.requires_grad) for parameter in module.parameters()]
    return sum(count for count, trainable in counts if trainable), sum(count for count, _ in counts)
