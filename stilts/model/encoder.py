"""Loading the pretrained encoder and its tokenizer: a Hub name, a local folder, or the tiny local build."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stilts.errors import StiltsError
from stilts.model.adapters import merge_adapter
from stilts.model.tiny import TinySettings, build_tiny_xlmr
from stilts.store.stages import EncoderSource

TINY = "tiny"


def _quiet_weight_bars() -> None:
    """Lightning's progress bar is the one progress display; transformers' weight-loading bars are noise."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def resolve_pretrained(name_or_path: str, cache_dir: str | Path, tiny: Mapping[str, Any] | None = None,
                       corpus_root: str | Path | None = None) -> str:
    """What from_pretrained should load: `tiny` becomes the path of the locally built model."""
    if name_or_path != TINY:
        return name_or_path
    from stilts.tasks.common.sources import SAMPLES_ROOT

    settings = TinySettings(**dict(tiny or {}))
    return str(build_tiny_xlmr(Path(corpus_root or SAMPLES_ROOT), Path(cache_dir), settings))


def _offline_error(kind: str, name_or_path: str, error: Exception) -> StiltsError:
    return StiltsError(
        f"could not load the {kind} {name_or_path!r}: {type(error).__name__}: {str(error).splitlines()[0].rstrip('.')}. "
        "Without network, add experiment=quickstart (a tiny XLM-R built locally) or set "
        "model.name_or_path=/path/to/a/downloaded/xlm-roberta-large."
    )


def load_tokenizer(source: str | EncoderSource):
    """The tokenizer of an encoder (adapters never change it)."""
    from transformers import AutoTokenizer

    name_or_path = source.base if isinstance(source, EncoderSource) else source
    try:
        return AutoTokenizer.from_pretrained(name_or_path, use_fast=True)
    except (OSError, ValueError) as error:
        raise _offline_error("tokenizer", name_or_path, error) from None


def _without_pooler(name_or_path: str) -> dict[str, Any]:
    """The argument that leaves out a family's pooler (BERT, XLM-R); DeBERTa-v2 has none to leave out."""
    from transformers import AutoConfig, AutoModel

    model_class = AutoModel._model_mapping[type(AutoConfig.from_pretrained(name_or_path))]
    return {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(model_class.__init__).parameters else {}


def load_encoder(source: str | EncoderSource):
    """The bare transformer (no task head, no pooler): heads are stilts' own. An `EncoderSource`
    with adapters loads its base, then merges each adapter in order."""
    if isinstance(source, EncoderSource):
        encoder = load_encoder(source.base)
        for adapter in source.adapters:
            encoder = merge_adapter(encoder, adapter)
        return encoder
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    name_or_path = source
    _quiet_weight_bars()
    # Hub XLM-R checkpoints (and the tiny model) carry an LM head the bare encoder does not use:
    # the load report listing those keys as unexpected is expected, not a warning.
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        return AutoModel.from_pretrained(name_or_path, **_without_pooler(name_or_path))
    except (OSError, ValueError) as error:
        raise _offline_error("model", name_or_path, error) from None
    finally:
        transformers_logging.set_verbosity(verbosity)


def load_mlm_head(pretrained: str, encoder):
    """The pretrained model's own masked-LM head, tied to `encoder`'s input embeddings, in any encoder
    family: the part of its `*ForMaskedLM` model that holds the output embeddings (XLM-R's `lm_head`,
    BERT's and DeBERTa-v2's `cls`). It comes from the pretrained model, not from an earlier stage
    (stage folders hold encoders only)."""
    from transformers import AutoModelForMaskedLM

    from stilts.heads.networks import MaskedLMHead

    _quiet_weight_bars()
    try:
        model = AutoModelForMaskedLM.from_pretrained(pretrained)
    except (OSError, ValueError) as error:
        raise _offline_error("masked-LM head of", pretrained, error) from None
    decoder = model.get_output_embeddings()
    holders = [child for child in model.children()
               if child is not model.base_model and any(module is decoder for module in child.modules())]
    if len(holders) != 1:
        raise StiltsError(f"{pretrained}: no masked-LM head holds its output embeddings ({type(model).__name__}); "
                          "MLM stages need a model whose head maps hidden states to vocabulary logits")
    return MaskedLMHead(holders[0], decoder, encoder.get_input_embeddings())
