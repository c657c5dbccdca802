"""What several benchmarks share: model shapes, the cached tiny model, quiet logs, median (min-max)."""

from __future__ import annotations

import logging
import os
import statistics
import warnings

# TinySettings overrides: stilts builds and caches each shape once (random weights, the tiny tokenizer).
MODEL_SHAPES = {
    "tiny": {},
    "small": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024},
}


def tiny_model(shape: str = "tiny") -> str:
    """The path of a locally built XLM-R of that shape, from stilts' cache ($STILTS_CACHE)."""
    from stilts.model.encoder import resolve_pretrained

    return resolve_pretrained("tiny", os.environ.get("STILTS_CACHE", "~/.cache/stilts"), tiny=MODEL_SHAPES[shape])


def quiet() -> None:
    """Benchmarks print tables: library warnings and info logs would interleave with them."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def spread(values: list[float], digits: int = 2) -> str:
    """Median (min-max); "-" when a value is missing (nan)."""
    if any(value != value for value in values):
        return "-"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"
