"""The LightningDataModule of one task: train + dev for fitting (English, or the union of several
languages' training data, with one dev set per language), and one evaluation set per target language. Features are built with a batched `datasets.map` and cached under an explicit
fingerprint (task, split, language, examples, tokenizer, lengths), so a second run reuses them."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import datasets
import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from stilts.data.collate import MODEL_INPUTS, DynamicPaddingCollator, MaskingCollator
from stilts.data.columns import feature_lengths, read_column
from stilts.data.sampling import LengthGroupedSampler, ResumableDataLoader, ResumableSampler
from stilts.errors import StiltsError
from stilts.heads import FeaturizeSettings, head_of
from stilts.tasks.common.sources import Loaded, load_split
from stilts.tasks.spec import Example, TaskSpec

log = logging.getLogger(__name__)
FEATURES_VERSION = 3  # bump when featurization changes, to invalidate old caches (3: no tagged word lost)
OTHER_LABEL = "<other>"
EVAL_SET = "eval_set"  # the column of an evaluation batch that says which set each feature belongs to


@dataclass
class EvalSet:
    name: str
    split: str
    examples: list[Example]
    features: datasets.Dataset
    no_gold: str | None = None  # why the set is predicted but not scored (its file carries no gold)


def _first_examples(eval_set: EvalSet, count: int) -> EvalSet:
    """The first `count` examples of an evaluation set with their features (all windows of each)."""
    kept = [index for index, example in enumerate(read_column(eval_set.features, "example_index")) if example < count]
    return EvalSet(eval_set.name, eval_set.split, eval_set.examples[:count], eval_set.features.select(kept),
                   eval_set.no_gold)


def tokenizer_digest(tokenizer) -> str:
    """Identity of a tokenizer by content, not path: every stage's copy of one tokenizer shares features."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)  # call-time settings that every encode call rewrites
        state.pop("padding", None)
        content = json.dumps(state, sort_keys=True)
    else:
        content = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256(f"{type(tokenizer).__name__}|{content}".encode()).hexdigest()


def _examples_digest(examples: Sequence[Example]) -> str:
    """The examples' content, for the features' cache key: their pickle (6x faster than JSON, which
    made a cached split cost 5% of featurizing it). Equal pickles mean equal content; the rare
    pickle that differs for equal content only costs a cache miss."""
    return hashlib.sha256(pickle.dumps(list(examples), protocol=5)).hexdigest()


class TaskDataModule(pl.LightningDataModule):
    """Data of one task. `train=False` builds evaluation sets only (e.g. for a scoring-only run)."""

    def __init__(self, spec: TaskSpec, tokenizer, *, source: str = "files", root: str | Path | None = None,
                 cache_dir: str | Path = "~/.cache/stilts/features", settings: FeaturizeSettings = FeaturizeSettings(),
                 micro_batch_size: int = 8, eval_batch_size: int = 32, train: bool = True,
                 eval_languages: Sequence[str] = (), eval_split: str = "test", num_workers: int = 0,
                 labels: Sequence[str] | None = None, seed: int = 0, train_languages: Sequence[str] = (),
                 group_by_length: bool = True) -> None:
        """`labels` fixes the label set of an open-label task (CCG) to that of its trained head;
        `train_languages` (default: the task's training language) are trained on together."""
        super().__init__()
        self.spec, self.tokenizer, self.settings = spec, tokenizer, settings
        self.source, self.root, self.cache_dir = source, root, Path(cache_dir).expanduser()
        self.micro_batch_size, self.eval_batch_size, self.num_workers = micro_batch_size, eval_batch_size, num_workers
        self.train, self.eval_languages, self.eval_split = train, list(eval_languages), eval_split
        self.seed = seed
        self.head = head_of(spec)
        self.head.check_settings(settings)
        self.train_languages = list(train_languages or [spec.train_language])
        self.collator = DynamicPaddingCollator(tokenizer.pad_token_id, task=spec.name)
        self.train_collator = self.collator
        if self.head.masks_tokens:
            def masking() -> MaskingCollator:
                return MaskingCollator(tokenizer.pad_token_id, tokenizer.mask_token_id, len(tokenizer),
                                       tokenizer.all_special_ids, seed, task=spec.name)
            self.collator, self.train_collator = masking(), masking()  # dev masks stay those of pass 0
        self.tokenizer_digest = tokenizer_digest(tokenizer)
        self.train_set: datasets.Dataset | None = None
        self.val_sets: list[EvalSet] = []
        self.test_sets: list[EvalSet] = []
        self.predictions: dict[str, dict[str, list[Any]]] = {"val": {}, "test": {}}
        self._labels = list(labels) if labels is not None else None
        self.eval_subset: int | None = None  # set by the stage's training (train.eval_subset)
        self.group_by_length = group_by_length
        self.step_examples: int | None = None  # features per optimizer step, all ranks (set by the stage's training)
        self._subsets: list[EvalSet] = []
        self._train_examples: list[Example] | None = None

    # -- building ---------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        """The head's label names: the task's fixed set, or, for open label sets, every tag of the
        training data plus OTHER_LABEL (which stands in for gold tags never seen in training)."""
        if self._labels is None:
            if not self.spec.labels_from_train:
                self._labels = list(self.spec.labels)
            else:
                tags = {tag for example in self._train() for tag in example["tags"]}
                self._labels = sorted(tags) + [OTHER_LABEL]
        return self._labels

    def _train(self) -> list[Example]:
        if self._train_examples is None:
            self._train_examples = [example for language in self.train_languages
                                    for example in self._examples("train", language)]
        return self._train_examples

    @property
    def train_examples(self) -> int:
        """How many training examples (not features) the task has: what samplers weigh tasks by."""
        return len(self._train())

    def _load(self, split: str, language: str) -> Loaded:
        """One split and language, checked for what the head needs (e.g. one number of choices)."""
        loaded = load_split(self.spec, split, language, self.source, self.root)
        self.head.check_examples(self.spec, f"{self.spec.name} {split}/{language} ({loaded.origin})", loaded.examples)
        return loaded

    def _examples(self, split: str, language: str) -> list[Example]:
        """Training and model-selection data: it must carry gold."""
        loaded = self._load(split, language)
        reason = self.head.missing_gold(self.spec, loaded.examples)
        if reason is not None:
            raise StiltsError(f"{self.spec.name} {split}/{language} ({loaded.origin}): {reason}; stilts trains and "
                              "selects models on labelled data only: provide the labelled files")
        return loaded.examples

    def _featurize(self, examples: list[Example], split: str, language: str) -> datasets.Dataset:
        fingerprint = hashlib.sha256(json.dumps({
            "task": self.spec.name, "split": split, "language": language, "version": FEATURES_VERSION,
            "tokenizer": self.tokenizer_digest,
            "settings": asdict(self.settings), "examples": _examples_digest(examples), "labels": self.labels,
        }, sort_keys=True).encode()).hexdigest()[:20]
        cache_file = self.cache_dir / f"{self.spec.name}-{split}-{language}-{fingerprint}.arrow"
        if cache_file.exists():  # datasets publishes a map's cache file only once it is complete
            log.info("%s %s/%s: reusing cached features %s", self.spec.name, split, language, cache_file)
            features = datasets.Dataset.from_file(str(cache_file))
            return features.add_column("feature_index", list(range(len(features))))
        log.info("%s %s/%s: featurizing %d examples -> %s", self.spec.name, split, language, len(examples), cache_file)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        rows = [dict(example, example_index=i) for i, example in enumerate(examples)]
        table = datasets.Dataset.from_list(rows)
        label_to_id = defaultdict(lambda: len(self.labels) - 1) if self.spec.labels_from_train else {}
        label_to_id.update({label: i for i, label in enumerate(self.labels)})
        featurize = partial(self.head.featurize, tokenizer=self.tokenizer, settings=self.settings,
                            label_to_id=label_to_id)
        features = table.map(featurize, batched=True, remove_columns=table.column_names, new_fingerprint=fingerprint,
                             cache_file_name=str(cache_file), load_from_cache_file=True,
                             desc=f"featurize {self.spec.name} {split}/{language}")
        return features.add_column("feature_index", list(range(len(features))))

    def _eval_set(self, split: str, language: str) -> EvalSet:
        examples = self._examples(split, language)
        return EvalSet(language, split, examples, self._featurize(examples, split, language))

    def _test_set(self, split: str, language: str) -> EvalSet:
        """An evaluated set: one without gold (XTREME's label-stripped test files) is predicted, not
        scored, and says so in one line."""
        loaded = self._load(split, language)
        reason = self.head.missing_gold(self.spec, loaded.examples)
        no_gold = None
        if reason is not None:
            no_gold = f"{loaded.origin}: {reason}"
            log.warning("%s %s/%s: %s: predictions only, no metric. To score it, evaluate on the labelled dev set "
                        "(target.eval_split=dev) or give the labelled release of the file", self.spec.name, split,
                        language, no_gold)
        features = self._featurize(self.head.with_stand_in_gold(self.spec, loaded.examples) if no_gold else loaded.examples,
                                   split, language)
        return EvalSet(language, split, loaded.examples, features, no_gold)

    def _build(self) -> None:
        if self.train:
            self.train_set = self._featurize(self._train(), "train", "+".join(self.train_languages))
            self.val_sets = [self._eval_set("dev", language) for language in self.train_languages]
        self.test_sets = [self._test_set(self.eval_split, lang) for lang in self.eval_languages]

    @property
    def no_gold(self) -> dict[str, str]:
        """The evaluated languages that were predicted but not scored, and why."""
        return {eval_set.name: eval_set.no_gold for eval_set in self.test_sets if eval_set.no_gold}

    def prepare_data(self) -> None:
        """Runs on one process per node first: reads and featurizes everything, filling the cache."""
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        """Every process: builds the sets once (from the cache prepare_data filled)."""
        if self.train_set is None and not self.test_sets:
            self._build()

    # -- loaders ----------------------------------------------------------------------------------
    def _generator(self) -> torch.Generator:
        """Loaders draw their worker seeds from their own generator, never from the global RNG
        that dropout uses: what training draws then does not depend on how often a loader started."""
        return torch.Generator().manual_seed(self.seed)

    def _eval_loader(self, eval_sets: Sequence[EvalSet]) -> DataLoader:
        """One loader over every evaluation set (each feature tagged with its set's index under
        EVAL_SET), ordered by length across sets so padding stays small: a test over 40 languages
        is one Lightning evaluation loop, not 40."""
        parts = [eval_set.features.select_columns([c for c in MODEL_INPUTS if c in eval_set.features.column_names])
                 for eval_set in eval_sets]
        combined = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
        combined = combined.add_column(EVAL_SET, [index for index, part in enumerate(parts) for _ in range(len(part))])
        lengths = [length for eval_set in eval_sets for length in feature_lengths(eval_set.features)]
        combined = combined.select(sorted(range(len(combined)), key=lengths.__getitem__))
        return DataLoader(combined, batch_size=self.eval_batch_size, shuffle=False, collate_fn=self.collator,
                          num_workers=self.num_workers, generator=self._generator())

    def train_dataloader(self) -> DataLoader:
        """Shuffled by (seed, epoch) alone, split across DDP ranks, resumable mid-epoch; with
        `group_by_length`, each optimizer step's features have similar lengths (LengthGroupedSampler)."""
        features = self.train_set.select_columns([c for c in MODEL_INPUTS if c in self.train_set.column_names])
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        if self.group_by_length:
            sampler = LengthGroupedSampler(features, lengths=feature_lengths(self.train_set), seed=self.seed,
                                           step_examples=self.step_examples or self.micro_batch_size * world,
                                           num_replicas=world, rank=rank)
        else:
            sampler = ResumableSampler(features, seed=self.seed, num_replicas=world, rank=rank)
        return ResumableDataLoader(features, batch_size=self.micro_batch_size, sampler=sampler,
                                   collate_fn=self.train_collator, num_workers=self.num_workers,
                                   generator=self._generator())

    def selection_sets(self) -> list[EvalSet]:
        """The dev sets validation scores: while fitting with `eval_subset`, the first eval_subset
        examples of each (jiant's eval_subset_num); the final validate after fit uses them all."""
        fitting = self.trainer is not None and self.trainer.state.fn == TrainerFn.FITTING
        if not fitting or self.eval_subset is None:
            return self.val_sets
        if len(self._subsets) != len(self.val_sets):
            self._subsets = [_first_examples(eval_set, self.eval_subset) for eval_set in self.val_sets]
        return self._subsets

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.selection_sets())

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_sets)

    # -- scoring ----------------------------------------------------------------------------------
    def eval_keys(self, stage: str) -> list[tuple[int, int]]:
        """(dataloader index, eval set index) of every set `stage` scores: one loader holds them all."""
        return [(0, index) for index in range(len(self._stage_sets(stage)))]

    def _stage_sets(self, stage: str) -> list[EvalSet]:
        return self.selection_sets() if stage == "val" else self.test_sets

    def score(self, stage: str, key: tuple[int, int],
              feature_predictions: dict[int, Any]) -> tuple[str, dict[str, float], float | None]:
        """(set name, metrics, task score); a set without gold gets its predictions, no metrics and no score."""
        eval_set = self._stage_sets(stage)[key[1]]
        missing = len(eval_set.features) - len(feature_predictions)
        if missing:
            raise StiltsError(
                f"{self.spec.name} {eval_set.split}/{eval_set.name}: {missing} features were not evaluated; "
                "do not limit evaluation batches (trainer.limit_val_batches/limit_test_batches) when scoring"
            )
        columns = {name: read_column(eval_set.features, name) for name in self.head.decode_columns}
        predictions = self.head.decode(self.spec, self.labels, eval_set.examples, columns, feature_predictions)
        self.predictions[stage][eval_set.name] = predictions
        if eval_set.no_gold:
            return eval_set.name, {}, None
        metrics = self.spec.scorer(eval_set.examples, predictions, eval_set.name)
        return eval_set.name, metrics, float(self.spec.score_key(metrics))

    def selection_score(self, scores: dict[str, float]) -> float:
        """Model selection: the mean dev score over the trained languages' dev sets."""
        return sum(scores.values()) / len(scores)
