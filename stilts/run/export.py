"""What a finished stage leaves in the store: encoder (safetensors, loadable with from_pretrained),
one head per task, dev predictions in each task's official format, then stage.json vouching for
every file; and the prediction files of an evaluation."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import save

from stilts.data.datamodule import TaskDataModule
from stilts.eval.qa import Answer
from stilts.heads import head_of
from stilts.store.files import apply_umask_modes, atomic_output, replace_folder, write_json_atomic, write_text_atomic
from stilts.model.module import StiltsModule
from stilts.store import stages
from stilts.store.stages import Stage
from stilts.tasks.spec import TaskSpec


def write_predictions(spec: TaskSpec, datamodule: TaskDataModule, stage: str, folder: Path) -> None:
    """Each evaluation set's predictions in the official format, e.g. predictions/test-de.tsv; for
    SQuAD v2 also the no-answer odds (dev-en.null_odds.json, the official script's --na-prob-file)."""
    for eval_set in datamodule.val_sets if stage == "val" else datamodule.test_sets:
        predictions = datamodule.predictions[stage][eval_set.name]
        suffix, text = head_of(spec).render(spec, eval_set.examples, predictions)
        write_text_atomic(folder / f"{eval_set.split}-{eval_set.name}{suffix}", text)
        if predictions and all(isinstance(answer, Answer) for answer in predictions):  # SQuAD v2's --na-prob-file
            odds = {example["id"]: answer.null_odds for example, answer in zip(eval_set.examples, predictions)}
            write_json_atomic(folder / f"{eval_set.split}-{eval_set.name}.null_odds.json", odds)


def export_stage(stage: Stage, module: StiltsModule, tokenizer, members: Mapping[str, TaskDataModule],
            summary: Mapping[str, Any], keep_checkpoints: bool) -> None:
    """Encoder (or a peft stage's adapter) as safetensors (loadable with from_pretrained), one head per task apart, dev
    predictions, each written under a temporary name first; then stage.json with every file's
    checksum; then the Lightning checkpoints go (unless kept)."""
    for name, member in members.items():
        folder = stage.directory / "predictions" / (name if stage.mixture is not None else "")
        write_predictions(member.spec, member, "val", folder)
    staging = stage.directory / f".encoder-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    module.encoder.save_pretrained(staging, safe_serialization=True)  # a peft stage: its adapter alone
    if stage.peft is None:  # an adapter's stage loads the tokenizer of the encoder it was trained on
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:  # featurizing left truncation and padding set: the saved file must not depend on it
            backend.no_truncation()
            backend.no_padding()
        tokenizer.save_pretrained(staging)
    apply_umask_modes(staging)  # safetensors writes 0600: the lab must read a shared store
    replace_folder(staging, stage.encoder_dir)
    for name, head in module.heads.items():
        state = head.exported_state() if hasattr(head, "exported_state") else head.state_dict()
        with atomic_output(stage.head_file(name)) as stream:
            stream.write(save({k: v.contiguous() for k, v in state.items()}))
    stages.publish(stage.directory, summary)
    if not keep_checkpoints:
        shutil.rmtree(stage.directory / stages.CHECKPOINTS, ignore_errors=True)
