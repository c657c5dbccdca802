"""Intermediate settings spelled out: presets defined from task domains, ad-hoc mixtures, target tasks
as intermediate tasks, languages; bad mixture settings name their key. And XTREME's translate-train
files read in their real layout."""

from __future__ import annotations

import json

import pytest

from stilts.errors import StiltsError
from stilts.mixtures import expand_intermediate
from stilts.tasks import get_task
from stilts.tasks.common.sources import SAMPLES_ROOT, find_files, read_file, read_files

NINE = {"squad", "mnli", "anli_plus", "qqp", "hellaswag", "cosmosqa", "commonsenseqa", "socialiqa", "ccg"}


def _preset(name: str) -> dict:
    from importlib import resources

    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.create((resources.files("stilts.conf") / "intermediate" /
                                                    f"{name}.yaml").read_text()))


def test_presets_come_from_the_tasks_domains() -> None:
    all9 = expand_intermediate(_preset("all9"))["all9"]
    assert set(all9["tasks"]) == NINE and all9["sampler"] == "proportional"
    commonsense = expand_intermediate(_preset("commonsense"))["commonsense"]
    assert set(commonsense["tasks"]) == {"hellaswag", "cosmosqa", "commonsenseqa", "socialiqa"}
    assert {get_task(name).domain for name in all9["tasks"]} == {"qa", "nli", "paraphrase", "commonsense", "syntax"}


def test_an_ad_hoc_mixture_gets_each_task_s_defaults_and_overrides() -> None:
    expanded = expand_intermediate({"mix": {"tasks": {"squad": {"epochs": 1}, "mnli": None, "mlm": {"languages": ["de", "sw"]}},
                                            "sampler": "temperature", "temperature": 2}})["mix"]
    assert expanded["tasks"]["squad"] == {"epochs": 1, "max_length": 384, "doc_stride": 128, "effective_batch_size": 16,
                                          "languages": ["en"]}
    assert expanded["tasks"]["mnli"]["epochs"] == 2 and expanded["tasks"]["mlm"]["languages"] == ["de", "sw"]
    assert expanded["temperature"] == 2 and expanded["max_steps"] is None
    assert expand_intermediate({"mix": expanded}) == {"mix": expanded}  # idempotent: one canonical form
    listed = expand_intermediate({"mix": {"tasks": ["mlm"], "sampler": "uniform"}})["mix"]
    assert listed["tasks"]["mlm"]["languages"] == list(get_task("mlm").languages)  # XTREME's 40 by default


def test_a_target_task_is_an_intermediate_task_with_its_target_tunables() -> None:
    pawsx = expand_intermediate({"pawsx": {"languages": ["de", "ja"]}})["pawsx"]
    assert pawsx == {"epochs": 5, "max_length": 256, "effective_batch_size": 32, "languages": ["de", "ja"]}
    assert expand_intermediate(_preset("xnli"))["xnli"]["languages"] == ["en"]


@pytest.mark.parametrize("node, message", [
    ({"mix": {"tasks": ["squad"], "sampler": "round_robin"}}, "intermediate.mix.sampler must be one of"),
    ({"mix": {"tasks": ["squad", "nope"]}}, "unknown task 'nope'"),
    ({"mix": {"tasks": "squad"}}, "intermediate.mix.tasks must be 'all', a list"),
    ({"mix": {"tasks": "???"}}, "intermediate.mix.tasks must be set: the tasks to mix"),
    ({"mix": {"tasks": ["squad"], "temperature": 0}}, "intermediate.mix.temperature must be a positive number"),
    ({"mix": {"tasks": ["squad", "mnli"], "sampler": "specified"}}, "intermediate.mix.weights is needed"),
    ({"mix": {"tasks": ["squad", "mnli"], "sampler": "specified", "weights": {"squad": 1}}}, "no weight for ['mnli']"),
    ({"mix": {"tasks": ["squad"], "selection": {"qqp": 1}}}, "intermediate.mix.selection: ['qqp'] are not tasks"),
    ({"mix": {"tasks": ["squad"], "max_steps": 0}}, "intermediate.mix.max_steps must be a positive whole number"),
    ({"mix": {"tasks": ["squad"], "samplr": "uniform"}}, "unknown mixture setting intermediate.mix.samplr"),
    ({"mix": {"tasks": "all", "domains": ["retrieval"]}}, "no task of intermediate.mix.tasks has a domain"),
    ({"mix": {"tasks": "all", "domains": ["cooking"]}}, "intermediate.mix.domains must be a list of domains"),
    ({"pawsx": {"languages": ["de", "xx"]}}, "intermediate.pawsx.languages: pawsx has no language(s) ['xx']"),
    ({"bucc": None}, "task 'bucc' has no training data"),
    ({"mix": {"tasks": {"squad": {"lr": 1e-4}}}}, "intermediate.mix.tasks.squad.lr: a mixture trains one optimizer"),
])
def test_bad_mixture_settings_name_their_key(node, message) -> None:
    with pytest.raises(StiltsError) as error:
        expand_intermediate(node)
    assert message in str(error.value)


def test_pawsx_translate_train_is_read_in_xtreme_s_layout() -> None:
    spec = get_task("pawsx")
    [path] = find_files(spec, "train", "de", SAMPLES_ROOT)
    assert path.relative_to(SAMPLES_ROOT).as_posix() == "xtreme_translations/PAWSX/translate-train/en-de-translated.tsv"
    examples = read_file(spec, path, SAMPLES_ROOT)
    english = read_files(spec, "train", "en", SAMPLES_ROOT)
    assert len(examples) == 12 and examples[0]["text_a"].startswith("Im Ostflügel")  # the translated pair
    assert [e["label"] for e in examples] == [e["label"] for e in english[:12]]


def test_xnli_translate_train_maps_labels_and_drops_broken_rows(tmp_path, caplog) -> None:
    folder = tmp_path / "xtreme_translations" / "XNLI" / "translate-train"
    folder.mkdir(parents=True)
    (folder / "en-sw-translated.tsv").write_text(
        "A man sleeps.\tA man is awake.\tMtu analala.\tMtu yuko macho.\tcontradictory\n"
        "A dog runs.\tAn animal moves.\tMbwa anakimbia.\tMnyama anasonga.\tentailment\n"
        "broken row\twith three\tcolumns\n"
        "A cat.\tA pet.\tPaka.\tMnyama.\tmaybe\n", encoding="utf-8")
    examples = read_files(get_task("xnli"), "train", "sw", tmp_path)
    assert [(e["text_a"], e["label"]) for e in examples] == [("Mtu analala.", "contradiction"),
                                                            ("Mbwa anakimbia.", "entailment")]
    assert "dropped 2 malformed row(s)" in caplog.text and "3, 4" in caplog.text


def test_squad_translate_train_drops_answers_the_translation_moved(tmp_path, caplog) -> None:
    folder = tmp_path / "xtreme_translations" / "SQuAD" / "translate-train"
    folder.mkdir(parents=True)
    context = "Berlin ist die Hauptstadt Deutschlands."
    data = {"data": [{"title": "Berlin", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Was ist Berlin?", "answers": [{"text": "die Hauptstadt", "answer_start": 11}]},
        {"id": "q2", "question": "Wessen Hauptstadt?", "answers": [{"text": "Deutschlands", "answer_start": -1}]},
    ]}]}]}
    (folder / "squad.translate.train.en-de.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "squad").mkdir()
    (tmp_path / "squad" / "train-v1.1.json").write_text(json.dumps({"data": []}))
    spec = get_task("xquad")
    examples = read_files(spec, "train", "de", tmp_path)
    assert [e["id"] for e in examples] == ["q1"] and "dropped 1 question(s)" in caplog.text
    # English keeps SQuAD itself; the English file never stands in for German (nor the reverse).
    assert find_files(spec, "train", "en", tmp_path) == [tmp_path / "squad" / "train-v1.1.json"]
    with pytest.raises(StiltsError, match="no train data for language 'el'"):
        find_files(spec, "train", "el", tmp_path)
