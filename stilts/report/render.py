"""How the report's tables look: Markdown and LaTeX text (missing values as a dash, never 0) and
flat CSV-ready frames."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from stilts.report.load import BASELINE

MISSING = "–"
_LATEX = {"_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "→": r"$\rightarrow$", "±": r"$\pm$", MISSING: "--"}


def number(value: object, signed: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return MISSING if not isinstance(value, str) else value
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _cell(stats: pd.Series) -> str:
    mean, std, gain = stats.get("mean", math.nan), stats.get("std", math.nan), stats.get("gain", math.nan)
    if math.isnan(mean):
        return MISSING
    text = number(mean) + (f" ± {std:.2f}" if not math.isnan(std) else "")
    return text + (f" ({gain:+.2f})" if not math.isnan(gain) else "")


def _seed_counts(counts: pd.Series) -> str:
    counts = counts[counts > 0]
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}–{high}"


def main_cells(table: pd.DataFrame, bold: Callable[[str], str]) -> pd.DataFrame:
    """The main table as text: "mean ± std (gain)" per cell, the best mean of each column (per model)
    through `bold`, and the seed count of each row."""
    columns = list(dict.fromkeys(table.columns.get_level_values(0)))
    text = pd.DataFrame(index=table.index, columns=columns, dtype=object)
    for column in columns:
        stats = table[column]
        best = stats["mean"].groupby(level="model").transform("max")
        for index, row in stats.iterrows():
            cell = _cell(row.drop("gain") if index[1] == BASELINE else row)
            text.loc[index, column] = bold(cell) if cell != MISSING and row["mean"] == best[index] else cell
    counts = table.xs("n", axis=1, level=1)
    text.insert(0, "seeds", [_seed_counts(row) for _, row in counts.iterrows()])
    return text.reset_index().rename(columns={"setup": "intermediate"})


def markdown(frame: pd.DataFrame) -> str:
    """A Markdown table (index levels as columns); floats with 2 decimals, missing values as a dash."""
    return _texts(flat(frame)).to_markdown(index=False, disable_numparse=True)


def latex(frame: pd.DataFrame) -> str:
    """A LaTeX tabular (booktabs) of a text frame, special characters escaped."""
    def escape(text: object) -> str:
        text = str(text)
        for plain, escaped in _LATEX.items():
            text = text.replace(plain, escaped)
        return text
    escaped = _texts(frame).map(escape).rename(columns=escape)
    return escaped.to_latex(index=False, escape=False)


def _texts(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = [" ".join(str(part) for part in column if str(part)) for column in frame.columns]
    return frame.map(_text)


def _text(value: object) -> object:
    if isinstance(value, float):
        return number(value)
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return value


def flat(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns joined into single names and the index as columns, for CSV."""
    frame = frame.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = [" ".join(str(part) for part in column if str(part)) for column in frame.columns]
    return frame.reset_index() if any(name is not None for name in frame.index.names) else frame
