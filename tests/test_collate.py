"""Dynamic padding: every batch is padded to its own longest sequence."""

from __future__ import annotations

import torch

from stilts.data.collate import DynamicPaddingCollator
from stilts.heads import IGNORE_INDEX

PAD = 1  # XLM-R's pad id


def test_pads_to_longest_in_batch_not_max_length() -> None:
    collate = DynamicPaddingCollator(PAD)
    features = [
        {"input_ids": [0, 5, 6, 2], "attention_mask": [1, 1, 1, 1], "labels": 2},
        {"input_ids": [0, 7, 2], "attention_mask": [1, 1, 1], "labels": 0},
    ]
    batch = collate(features)
    assert batch["input_ids"].shape == (2, 4)  # longest is 4, nowhere near any max_length
    assert batch["input_ids"].tolist() == [[0, 5, 6, 2], [0, 7, 2, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [2, 0]  # scalar labels untouched
    assert all(t.dtype == torch.long for t in batch.values())


def test_no_padding_when_equal_lengths_and_batch_of_one() -> None:
    collate = DynamicPaddingCollator(PAD)
    batch = collate([{"input_ids": [0, 9, 2], "attention_mask": [1, 1, 1]}])
    assert batch["input_ids"].tolist() == [[0, 9, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1]]


def test_token_labels_padded_with_ignore_index() -> None:
    collate = DynamicPaddingCollator(0)  # a different pad id is honoured
    features = [
        {"input_ids": [5, 6], "attention_mask": [1, 1], "labels": [IGNORE_INDEX, 3]},
        {"input_ids": [5, 6, 7, 8, 9], "attention_mask": [1] * 5, "labels": [IGNORE_INDEX, 1, 2, IGNORE_INDEX, 4]},
        {"input_ids": [5], "attention_mask": [1], "labels": [IGNORE_INDEX]},
    ]
    batch = collate(features)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (3, 5)
    assert batch["input_ids"].tolist() == [[5, 6, 0, 0, 0], [5, 6, 7, 8, 9], [5, 0, 0, 0, 0]]
    assert batch["labels"].tolist() == [
        [IGNORE_INDEX, 3, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
        [IGNORE_INDEX, 1, 2, IGNORE_INDEX, 4],
        [IGNORE_INDEX] * 5,
    ]
    assert batch["attention_mask"].sum(1).tolist() == [2, 5, 1]


def test_multiple_choice_padded_over_all_choices_of_the_batch() -> None:
    collate = DynamicPaddingCollator(PAD)
    features = [
        {"input_ids": [[0, 4, 2], [0, 4, 5, 2]], "attention_mask": [[1, 1, 1], [1, 1, 1, 1]], "labels": 1,
         "feature_index": 0},
        {"input_ids": [[0, 2], [0, 6, 6, 6, 6, 2]], "attention_mask": [[1, 1], [1] * 6], "labels": 0,
         "feature_index": 1},
    ]
    batch = collate(features)
    assert batch["input_ids"].shape == (2, 2, 6)  # [B, C, longest choice in the batch]
    assert batch["attention_mask"].shape == (2, 2, 6)
    assert batch["input_ids"][0, 0].tolist() == [0, 4, 2, PAD, PAD, PAD]
    assert batch["input_ids"][1, 0].tolist() == [0, 2, PAD, PAD, PAD, PAD]
    assert batch["input_ids"][1, 1].tolist() == [0, 6, 6, 6, 6, 2]
    assert batch["attention_mask"][0].tolist() == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]]
    assert batch["attention_mask"].sum(-1).tolist() == [[3, 4], [2, 6]]
    assert batch["labels"].tolist() == [1, 0]
    assert batch["feature_index"].tolist() == [0, 1]


def test_qa_features_with_positions() -> None:
    collate = DynamicPaddingCollator(PAD)
    features = [
        {"input_ids": [0, 10, 2, 2, 11, 12, 13, 2], "attention_mask": [1] * 8, "start_positions": 4,
         "end_positions": 5, "feature_index": 3},
        {"input_ids": [0, 10, 2, 2, 11, 2], "attention_mask": [1] * 6, "start_positions": 0, "end_positions": 0,
         "feature_index": 4},
    ]
    batch = collate(features)
    assert set(batch) == {"input_ids", "attention_mask", "start_positions", "end_positions", "feature_index"}
    assert batch["input_ids"].shape == (2, 8)
    assert batch["input_ids"][1].tolist() == [0, 10, 2, 2, 11, 2, PAD, PAD]
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert batch["start_positions"].tolist() == [4, 0]
    assert batch["end_positions"].tolist() == [5, 0]
    assert batch["feature_index"].tolist() == [3, 4]
    assert batch["start_positions"].shape == (2,)
