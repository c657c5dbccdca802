"""Evaluation runs every language in one pass: one Lightning loop over all sets, batches ordered by
length across sets, and the same scores as evaluating each language on its own."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader

from stilts.data.datamodule import EVAL_SET, TaskDataModule
from stilts.model.encoder import load_encoder
from stilts.heads import head_of
from stilts.model.module import StiltsModule
from stilts.tasks import get_task
from stilts.tasks.common.sources import SAMPLES_ROOT

LANGUAGES = ["de", "zh", "en", "sw", "fr"]


def _datamodule(task: str, tokenizer, cache: Path, languages: list[str]) -> TaskDataModule:
    spec = get_task(task)
    datamodule = TaskDataModule(spec, tokenizer, root=SAMPLES_ROOT, cache_dir=cache, train=False,
                                eval_languages=languages, eval_batch_size=4,
                                eval_split="test" if "test" in spec.files else "dev")
    datamodule.setup()
    return datamodule


def _module(tiny_model_dir: Path, task: str, labels: int) -> StiltsModule:
    torch.manual_seed(0)
    encoder = load_encoder(str(tiny_model_dir))
    return StiltsModule(encoder, {task: head_of(get_task(task)).module(encoder.config.hidden_size, labels)})


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, **kwargs)


@pytest.mark.parametrize("task", ["panx", "xnli", "tydiqa"])
def test_one_pass_scores_every_language_as_alone(task, tiny_model_dir, tiny_tokenizer, tmp_path) -> None:
    spec = get_task(task)
    languages = [language for language in LANGUAGES if language in spec.languages][:4]
    together = _datamodule(task, tiny_tokenizer, tmp_path, languages)
    module = _module(tiny_model_dir, task, len(together.labels))
    trainer = _trainer(logger=CSVLogger(tmp_path / "logs"))
    trainer.test(module, datamodule=together, verbose=False)
    assert isinstance(trainer.test_dataloaders, DataLoader)  # one loop, not one per language
    assert list(module.results["test"]) == languages
    for language in languages:
        alone = _datamodule(task, tiny_tokenizer, tmp_path, [language])
        single = StiltsModule(module.encoder, dict(module.heads))
        _trainer(logger=False).test(single, datamodule=alone, verbose=False)
        assert single.results["test"][language] == module.results["test"][language]
        assert alone.predictions["test"][language] == together.predictions["test"][language]
    # Every set's metrics reach the logger, under test/<language>/<metric>.
    (metrics_file,) = (tmp_path / "logs").rglob("metrics.csv")
    header = next(csv.reader(metrics_file.read_text().splitlines()))
    assert {f"test/{language}/score" for language in languages} <= set(header)


def test_evaluation_batches_mix_sets_in_length_order(tiny_tokenizer, tmp_path) -> None:
    datamodule = _datamodule("panx", tiny_tokenizer, tmp_path, LANGUAGES)
    loader = datamodule.test_dataloader()
    widths, sets = [], set()
    for batch in loader:
        widths.append(batch["input_ids"].shape[1])
        sets.update(batch[EVAL_SET].tolist())
    assert widths == sorted(widths)  # shortest first across all languages: padding stays small
    assert sets == set(range(len(LANGUAGES)))
    assert sum(len(eval_set.features) for eval_set in datamodule.test_sets) == len(loader.dataset)


def test_a_set_left_out_of_the_pass_is_an_error(tiny_model_dir, tiny_tokenizer, tmp_path) -> None:
    datamodule = _datamodule("xnli", tiny_tokenizer, tmp_path, ["de", "en"])
    module = _module(tiny_model_dir, "xnli", len(datamodule.labels))
    with pytest.raises(Exception, match="features were not evaluated"):
        _trainer(logger=False, limit_test_batches=1).test(module, datamodule=datamodule, verbose=False)
