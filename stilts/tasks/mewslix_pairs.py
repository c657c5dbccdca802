"""English Wikipedia mention -> entity pairs of Mewsli-X: the dual-encoder training task of XTREME-R's
Mewsli-X recipe (google-research/xtreme scripts/train_mewslix.sh, third_party/processors/mewslix.py).

Files are Mewsli-X's `wikipedia_pairs-{train,dev}.jsonl` (`MentionEntityPair` records of its
schema.py). The query is XTREME-R's marked mention in its sentence, the candidate the entity's
description; the same texts `target.text_format=xtreme_r` embeds at evaluation.
"""

from __future__ import annotations

from pathlib import Path

from stilts.errors import StiltsError
from stilts.tasks import register
from stilts.tasks.common.readers import jsonl_rows
from stilts.tasks.mewslix import entity_text, marked_mention, mention_sentence
from stilts.tasks.common.pair_ranking import score_pairs
from stilts.tasks.common.scoring import metric
from stilts.tasks.spec import Example, TaskSpec


def read_mention_entity_pairs(path: Path) -> list[Example]:
    pairs = []
    for number, row in jsonl_rows(path):
        try:
            context, mention = row["contextual_mention"]["context"], row["contextual_mention"]["mention"]
            entity, span = row["entity"], mention["mention_span"]
            text, start, end = context["text"], span["start"], span["end"]
            sentence = mention_sentence(context["sentence_spans"], start, end)
            pairs.append({"id": mention["example_id"], "query": marked_mention(text, sentence, (start, end)),
                          "candidate": entity_text(entity["description"], entity["sentence_spans"]),
                          "candidate_context": None, "candidate_id": entity["entity_id"]})
        except (KeyError, TypeError) as error:
            raise StiltsError(f"{path}:{number}: not a Mewsli-X MentionEntityPair record (missing {error}); "
                              "expected contextual_mention.{context,mention} and entity") from None
    return pairs


MEWSLIX_PAIRS = register(TaskSpec(
    name="mewslix_pairs",
    description="Mewsli-X English Wikipedia mention -> entity pairs (dual encoder with in-batch negatives)",
    head="dual_encoder",
    domain="retrieval",
    reader=read_mention_entity_pairs,
    files={"train": ("mewslix/wikipedia_pairs-train.jsonl",), "dev": ("mewslix/wikipedia_pairs-dev.jsonl",)},
    languages=("en",),
    scorer=score_pairs,
    score_key=metric("map@20"),
    main_metrics=("map@20", "p@1"),
    download_hint=("Run google-research/xtreme's download_mewslix (get-mewsli-x.sh) and put "
                   "wikipedia_pairs-{train,dev}.jsonl in DIR/mewslix/."),
))
