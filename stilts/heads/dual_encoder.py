"""XTREME-R's dual encoder for retrieval (LAReQA, Mewsli-X recipes): a query and its candidate through
one encoder, in-batch negatives, so its micro-batch is a number-changing setting (`pairs_per_batch`)
and it trains in a stage of its own; its dev predictions are `{query: [candidate ids]}` rankings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stilts.errors import StiltsError
from stilts.heads.base import Batch, FeaturizeSettings, HeadType
from stilts.tasks.common.pair_ranking import rank_pairs
from stilts.tasks.common.retrieval_formats import render_rankings
from stilts.tasks.spec import Example, TaskSpec


class DualEncoder(HeadType):
    name = "dual_encoder"
    gold_field = None  # each query's own candidate is its gold
    group_by_length = False  # a micro-batch is its queries' negatives: keep them random, as XTREME's recipe does
    trains_alone_because = "a dual encoder's loss depends on the pairs of each micro-batch"
    embeds_with_pooler = True

    def featurize(self, batch: Batch, tokenizer, settings: FeaturizeSettings, label_to_id: Mapping[str, int]) -> dict:
        """Query (cut at max_query_length) and candidate (cut at max_length) as the two sequences of one
        feature, [2][tokens]; a candidate with a context is encoded as the pair (candidate, context), as
        XTREME-R encodes LAReQA answers (sentence, paragraph)."""
        queries = tokenizer(batch["query"], truncation=True, max_length=settings.max_query_length)
        contexts = batch["candidate_context"]
        if all(context is None for context in contexts):
            candidates = tokenizer(batch["candidate"], truncation=True, max_length=settings.max_length)
        elif any(context is None for context in contexts):
            raise StiltsError("dual-encoder examples must all have a candidate_context or none (one task, one encoding)")
        else:
            candidates = tokenizer(batch["candidate"], contexts, truncation="longest_first",
                                   max_length=settings.max_length)
        return {"input_ids": [list(pair) for pair in zip(queries["input_ids"], candidates["input_ids"])],
                "attention_mask": [list(pair) for pair in zip(queries["attention_mask"], candidates["attention_mask"])],
                "example_index": batch["example_index"]}

    def micro_batch_limit(self, spec: TaskSpec, settings: Mapping[str, Any], effective: int, default: int) -> int:
        """Its negatives are the other pairs of its micro-batch, so the micro-batch is the task's
        `pairs_per_batch`, never the hardware's `train.micro_batch_size`; the effective batch must be a
        multiple of it."""
        pairs = settings.get("pairs_per_batch")
        if not isinstance(pairs, int) or isinstance(pairs, bool) or pairs < 2:
            raise StiltsError(f"{spec.name}: pairs_per_batch must be an integer >= 2 (each query's in-batch "
                              f"negatives are the other pairs of its micro-batch), not {pairs!r}")
        if effective % pairs:
            raise StiltsError(f"{spec.name}: the effective batch {effective} is not a multiple of pairs_per_batch "
                              f"{pairs}; change effective_batch_size or pairs_per_batch")
        return pairs

    def check_micro_batch(self, spec: TaskSpec, micro: int, limit: int, world_size: int) -> None:
        if micro != limit:
            raise StiltsError(f"{spec.name}: {world_size} processes leave each a share of the effective batch that is not "
                              f"a multiple of pairs_per_batch {limit}; raise effective_batch_size or use fewer devices")

    def render(self, spec: TaskSpec, examples: Sequence[Example], predictions: Sequence[Any]) -> tuple[str, str]:
        return ".json", render_rankings(rank_pairs(examples, predictions).rankings)

    def probe_rows(self, features: Mapping[str, list], index: int, sequences: list) -> list[tuple[int, int, int]]:
        sequences.extend(features["input_ids"][index])  # [query, candidate]: text only
        return []

    def module(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        from stilts.heads.networks import DualEncoderHead

        return DualEncoderHead(hidden_size)


HEAD = DualEncoder()
