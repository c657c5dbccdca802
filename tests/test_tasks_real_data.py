"""Every task whose real data is in ../shared/data loads it through the task's own file templates
(XTREME's layout, or the original release layout) with the right counts, labels and values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stilts.tasks import get_task
from stilts.tasks.common.sources import read_files


def xtreme_root(tmp_path: Path, shared: Path, links: dict[str, str]) -> Path:
    """A data root in XTREME's download layout, made of links to the real slices."""
    for target, source in links.items():
        path = tmp_path / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(shared / source)
    return tmp_path


def test_pawsx_dev(shared_data, tmp_path) -> None:
    root = xtreme_root(tmp_path, shared_data, {f"pawsx/dev-{lang}.tsv": f"pawsx/dev-{lang}.tsv" for lang in ("en", "de", "ja")})
    for language in ("en", "de", "ja"):
        examples = read_files(get_task("pawsx"), "dev", language, root)
        assert len(examples) == 2000
        assert {e["label"] for e in examples} == {"0", "1"}
    first = read_files(get_task("pawsx"), "dev", "en", root)[0]
    assert first["text_a"].startswith("From the merger of the Four Rivers Council")
    assert first["label"] == "1"


def test_panx_afrikaans(shared_data, tmp_path) -> None:
    root = xtreme_root(tmp_path, shared_data, {"panx/dev-af.tsv": "panx_af/dev-af.tsv",
                                               "panx/test-af.tsv": "panx_af/test-af.tsv"})
    spec = get_task("panx")
    for split in ("dev", "test"):
        sentences = read_files(spec, split, "af", root)
        assert len(sentences) == 1000
        assert {tag for s in sentences for tag in s["tags"]} <= set(spec.labels)
    dev = read_files(spec, "dev", "af", root)
    counts = {tag: sum(s["tags"].count(tag) for s in dev) for tag in spec.labels}
    assert counts == {"O": 7764, "B-PER": 370, "I-PER": 548, "B-ORG": 583, "I-ORG": 911, "B-LOC": 529, "I-LOC": 189}
    assert dev[0]["tokens"][:3] == ["Hy", "word", "opgevolg"]


def test_mlqa_dev_in_xtreme_layout(shared_data, tmp_path) -> None:
    links = {f"mlqa/MLQA_V1/dev/dev-context-{lang}-question-{lang}.json": f"mlqa/dev/dev-context-{lang}-question-{lang}.json"
             for lang in ("en", "de", "zh", "ar")}
    root = xtreme_root(tmp_path, shared_data, links)
    for language in ("en", "de", "zh", "ar"):
        examples = read_files(get_task("mlqa"), "dev", language, root)
        raw = json.loads((shared_data / links[f"mlqa/MLQA_V1/dev/dev-context-{language}-question-{language}.json"]).read_text())
        assert len(examples) == sum(len(p["qas"]) for a in raw["data"] for p in a["paragraphs"])
        assert all(e["answers"]["text"] for e in examples)


def test_xquad_every_shipped_language(shared_data, tmp_path) -> None:
    root = xtreme_root(tmp_path, shared_data, {f"xquad/xquad.{l}.json": f"xquad/xquad.{l}.json"
                                               for l in ("en", "de", "es", "zh", "ar")})
    ids = None
    for language in ("en", "de", "es", "zh", "ar"):
        examples = read_files(get_task("xquad"), "test", language, root)
        assert len(examples) == 1190
        # XQuAD is parallel: the same question ids in every language.
        assert ids is None or [e["id"] for e in examples] == ids
        ids = [e["id"] for e in examples]


def test_tydiqa_train_in_xtreme_layout(shared_data, tmp_path) -> None:
    root = xtreme_root(tmp_path, shared_data, {
        "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json": "tydiqa_goldp/tydiqa.goldp.en.train.json"})
    examples = read_files(get_task("tydiqa"), "train", "en", root)
    assert len(examples) == 3696
    assert examples[0]["answers"] == {"text": ["1920s"], "answer_start": [159]}


@pytest.mark.parametrize("layout", ["cambridgeltl", "xtreme"])
def test_xcopa_both_layouts(shared_data, tmp_path, layout) -> None:
    languages = ("et", "id", "it", "sw", "th", "zh")
    if layout == "cambridgeltl":  # the XCOPA repository's data/<lang>/ folders
        (tmp_path / "xcopa").mkdir()
        (tmp_path / "xcopa" / "data").symlink_to(shared_data / "xcopa" / "data")
        root = tmp_path
    else:
        root = xtreme_root(tmp_path, shared_data, {f"xcopa/{split}.{l}.jsonl": f"xcopa/data/{l}/{split}.{l}.jsonl"
                                                   for l in languages for split in ("val", "test")})
    spec = get_task("xcopa")
    for language in languages:
        assert len(read_files(spec, "dev", language, root)) == 100
        test = read_files(spec, "test", language, root)
        assert len(test) == 500
        assert all(len(e["choices"]) == 2 and e["label"] in (0, 1) for e in test)
    first = read_files(spec, "dev", "et", root)[0]
    assert first["context"] == "Mees keeras kraani lahti. What was the effect?"
    assert first["choices"] == ["Tualett täitus veega.", "Tilast voolas vett."] and first["label"] == 1


def test_udpos_xtreme_r_languages_are_selectable_not_default() -> None:
    from omegaconf import OmegaConf

    from stilts.tasks.common.languages import target_languages

    spec = get_task("udpos")
    assert "lt" not in spec.languages and "lt" in spec.all_languages
    assert target_languages(OmegaConf.create({"languages": ["lt", "wo", "de"]}), spec) == ["lt", "wo", "de"]
    assert target_languages(OmegaConf.create({"languages": None}), spec) == list(spec.languages)
    panx = get_task("panx")
    assert len(panx.languages) == 40 and len(panx.extra_languages) == 8


def test_anli_plus_needs_every_part_of_its_bundle(tmp_path) -> None:
    """ANLI+ trains on ANLI R1-R3 + MNLI + SNLI together; a missing part is named, not silently skipped."""
    from stilts.errors import StiltsError
    from stilts.tasks.common.sources import SAMPLES_ROOT

    spec = get_task("anli_plus")
    anli = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in SAMPLES_ROOT.glob("anli/anli_v1.0/R*/train.jsonl"))
    mnli = len((SAMPLES_ROOT / "MNLI/train.tsv").read_text(encoding="utf-8").splitlines()) - 1
    snli_rows = [json.loads(line) for line in
                 (SAMPLES_ROOT / "snli/snli_1.0/snli_1.0_train.jsonl").read_text(encoding="utf-8").splitlines()]
    snli = sum(row["gold_label"] != "-" for row in snli_rows)
    assert snli < len(snli_rows)  # the samples include no-consensus pairs, which are skipped
    assert len(read_files(spec, "train", "en", SAMPLES_ROOT)) == anli + mnli + snli
    assert len(read_files(spec, "dev", "en", SAMPLES_ROOT)) == sum(
        len(p.read_text(encoding="utf-8").splitlines()) for p in SAMPLES_ROOT.glob("anli/anli_v1.0/R*/dev.jsonl"))
    for folder in ("anli", "MNLI"):
        shutil.copytree(SAMPLES_ROOT / folder, tmp_path / folder)
    with pytest.raises(StiltsError, match="snli_1.0_train.jsonl"):
        read_files(spec, "train", "en", tmp_path)
