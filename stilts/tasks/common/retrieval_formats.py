"""Files of the retrieval targets: sentence lists, BUCC id-sentence files and id pairs, and the
`{query_id: [candidate ids]}` JSON stilts writes (and `python -m stilts.score` reads) for ranked
retrieval. Gold and prediction files of a task share one format, so one reader serves both."""

from __future__ import annotations

import json
from pathlib import Path

from stilts.errors import StiltsError
from stilts.tasks.common.readers import numbered_lines


def read_sentences(path: Path) -> list[str]:
    """One sentence per line (Tatoeba); line numbers are the alignment."""
    return [line for _, line in numbered_lines(path)]


def read_indices(path: Path) -> list[int]:
    """One integer per line: Tatoeba's predicted (or gold) English index for each source sentence."""
    indices = []
    for number, line in numbered_lines(path):
        if not line.strip().isdigit():
            raise StiltsError(f"{path}:{number}: expected a sentence index, found {line!r}")
        indices.append(int(line))
    return indices


def read_id_sentences(path: Path) -> tuple[list[str], list[str]]:
    """BUCC sentence file: `id<TAB>sentence` lines -> (ids, sentences)."""
    ids, sentences = [], []
    for number, line in numbered_lines(path):
        fields = line.split("\t", 1)
        if len(fields) != 2:
            raise StiltsError(f"{path}:{number}: expected `id<TAB>sentence`")
        ids.append(fields[0])
        sentences.append(fields[1])
    return ids, sentences


def read_id_pairs(path: Path) -> set[tuple[str, str]]:
    """BUCC gold (or mined) pairs: `source_id<TAB>english_id` lines."""
    pairs = set()
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise StiltsError(f"{path}:{number}: expected `source_id<TAB>english_id`")
        pairs.add((fields[0], fields[1]))
    return pairs


def read_rankings(path: Path) -> dict[str, list[str]]:
    """`{query_id: [candidate ids]}` JSON: relevant candidates (gold) or a ranking, best first (predictions)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StiltsError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise StiltsError(f"{path}: expected a JSON object {{query_id: [candidate ids]}}")
    return {str(query): [str(candidate) for candidate in candidates] for query, candidates in data.items()}


def render_rankings(rankings: dict[str, list[str]]) -> str:
    return json.dumps(rankings, ensure_ascii=False, indent=1) + "\n"
