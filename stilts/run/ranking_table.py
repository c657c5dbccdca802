"""A ranking document (`stilts.run.ranking.rank`) as the printed table and as the files a report reads:
ranking.json (the document) and ranking.csv (one flat row per candidate), each written atomically."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tabulate import tabulate

from stilts.eval.transferability import DATA_SIZE, ESTIMATES
from stilts.store.files import write_json_atomic, write_text_atomic

RANKING_FILE = "ranking.json"  # stilts.report.transfer finds rankings by this name
RANKING_TABLE = "ranking.csv"


def _cell(value: float | None, signed: bool = False, count: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if count else f"{value:+.4f}" if signed else f"{value:.4f}"


def table_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per candidate (the CSV's): rank, estimates, their change over the pretrained encoder."""
    rows = []
    for record in document["candidates"]:
        row = {"rank": record["rank"], "candidate": record["candidate"], "stage": record["stage"]}
        for name in ESTIMATES:
            row[name] = record["estimates"][name]
            if name in record["change"]:
                row[f"{name}_change"] = record["change"][name]
        row["seconds"] = round(record["seconds"], 3)
        row["notes"] = "; ".join(f"{name}: {note}" for name, note in record["notes"].items())
        rows.append(row)
    return rows


def format_ranking(document: Mapping[str, Any]) -> str:
    """The ranked table (tabulate), with what the rows are and what it cost."""
    rows_info = document["target_rows"]
    header = ["rank", "candidate", *(part for name in ESTIMATES
                                     for part in ((name, "Δ") if name in document["pretrained"] else (name,))), "s"]
    lines = [f"{document['target']}: {len(document['candidates'])} intermediate candidates ranked by "
             f"{document['method']} ({document['model_label']}, seed {document['seed']}); target rows: "
             f"{rows_info['rows']} from {rows_info['examples']} English training examples ({rows_info['labels']})"]
    body = []
    for record in document["candidates"]:
        cells = [str(record["rank"] or "-"), record["candidate"]]
        for name in ESTIMATES:
            cells.append(_cell(record["estimates"][name], count=name == DATA_SIZE))
            if name in record["change"]:
                cells.append(_cell(record["change"][name], signed=True))
        body.append([*cells, f"{record['seconds']:.1f}"])
    lines.append(tabulate(body, headers=header, disable_numparse=True,
                          colalign=["left" if i == 1 else "right" for i in range(len(header))]))
    lines.append("pretrained encoder: " + ", ".join(f"{name} {value:.4f}" for name, value in document["pretrained"].items())
                 + "  (Δ: the candidate's trained encoder minus this)")
    untrained = [record["candidate"] for record in document["candidates"] if record["stage"] is None]
    if untrained:
        lines.append(f"{len(untrained)} of {len(document['candidates'])} candidates have no trained stage yet, so only "
                     f"data_size and text_similarity: python -m stilts.train -m '+intermediate={','.join(untrained)}' with the same "
                     "settings trains them")
    lines.append(f"cost: {document['seconds']['total']:.1f} s on {document['device']} "
                 f"(shared {document['seconds']['shared']:.1f} s)")
    return "\n".join(lines)


def write_ranking(document: Mapping[str, Any], folder: Path) -> tuple[Path, Path]:
    """ranking.json and ranking.csv in `folder`, each written atomically."""
    rows = table_rows(document)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return write_json_atomic(folder / RANKING_FILE, document), write_text_atomic(folder / RANKING_TABLE, buffer.getvalue())
