"""The tiny XLM-R: it builds bit-identically in separate processes, and its tokenizer is XLM-R shaped
(special ids, vocabulary size), round-trips the sample text and splits punctuation off words."""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from stilts.model.tiny import SPECIAL_TOKENS, TinySettings, corpus_texts
from stilts.tasks.common.sources import SAMPLES_ROOT

BUILD = "import sys; from pathlib import Path; from stilts.model.tiny import build_tiny_xlmr; " \
        "from stilts.tasks.common.sources import SAMPLES_ROOT; print(build_tiny_xlmr(SAMPLES_ROOT, Path(sys.argv[1])))"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.cli
def test_builds_are_bit_identical_across_processes(tmp_path) -> None:
    # Two processes at once, with different hash seeds: nothing may depend on either.
    runs = [subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path / f"cache-{i}")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONHASHSEED": str(i)})
            for i in (1, 2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, stderr) in zip(runs, outputs):
        assert run.returncode == 0, stderr
    first, second = (Path(stdout.strip().splitlines()[-1]) for stdout, _ in outputs)
    assert first.name == second.name and first.parent != second.parent
    files = _files(first)
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(files)
    other = _files(second)
    assert sorted(files) == sorted(other)
    different = [name for name in files if files[name] != other[name]]
    assert not different, f"files differ between two builds: {different}"


def test_tokenizer_has_xlmr_special_ids_and_the_set_size(tiny_tokenizer) -> None:
    assert [tiny_tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS[:4]] == [0, 1, 2, 3]
    assert (tiny_tokenizer.bos_token_id, tiny_tokenizer.pad_token_id, tiny_tokenizer.eos_token_id,
            tiny_tokenizer.unk_token_id) == (0, 1, 2, 3)
    assert tiny_tokenizer.mask_token_id == len(tiny_tokenizer) - 1
    assert len(tiny_tokenizer) == TinySettings().vocab_size
    assert len(set(tiny_tokenizer.get_vocab())) == len(tiny_tokenizer)  # sentencepiece's specials not duplicated
    assert tiny_tokenizer("a b")["input_ids"][0] == 0 and tiny_tokenizer("a b")["input_ids"][-1] == 2


def _plain(text: str) -> bool:
    """Text a tokenizer must give back unchanged: NFKC-stable, single spaces, not blank."""
    return bool(text.strip()) and " ".join(text.split()) == text and unicodedata.normalize("NFKC", text) == text


def test_tokenizer_round_trips_sample_text(tiny_tokenizer) -> None:
    texts = [text for text in corpus_texts(SAMPLES_ROOT) if _plain(text)][::10]
    assert len(texts) > 500
    encoded = tiny_tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert not [text for text, ids in zip(texts, encoded) if tiny_tokenizer.unk_token_id in ids]
    decoded = tiny_tokenizer.batch_decode(encoded)
    wrong = [(text, back) for text, back in zip(texts, decoded) if text != back]
    assert not wrong, wrong[:5]


def test_tokenizer_splits_punctuation_off_words(tiny_tokenizer) -> None:
    text = 'Hello, world! The Normans (Norman: Nourmands) were "northmen"; it cost $1,000.50 in 1066-1070.'
    encoded = tiny_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    pieces = [text[start:end] for start, end in encoded["offset_mapping"] if end > start]

    def punctuation(char: str) -> bool:
        return unicodedata.category(char).startswith("P") or char == "$"

    mixed = [piece for piece in pieces if any(map(punctuation, piece)) and not all(map(punctuation, piece))]
    assert not mixed, f"pieces mixing punctuation and word characters: {mixed}"
    assert all(len(piece) == 1 for piece in pieces if punctuation(piece[0]))
    assert tiny_tokenizer.decode(encoded["input_ids"]) == text
    # An answer that ends before punctuation ends on a token boundary.
    ends = {end for _, end in encoded["offset_mapping"]}
    assert {text.index("Hello") + 5, text.index("Normans") + 7, text.index("northmen") + 8} <= ends
