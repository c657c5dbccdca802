"""Universal Dependencies POS tagging: trained on English, evaluated zero-shot in XTREME's 33 languages."""

from pathlib import Path

from stilts.tasks import register
from stilts.tasks.formats import read_conllu, read_token_tsv
from stilts.tasks.scoring import metric, score_tags
from stilts.tasks.spec import HubSource, TaskSpec

UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
        "PUNCT", "SCONJ", "SYM", "VERB", "X")
LANGUAGE_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}


XTREME_R_NAMES = {"lt": "Lithuanian", "pl": "Polish", "uk": "Ukrainian", "wo": "Wolof", "ro": "Romanian"}


def read_ud(path: Path) -> list[dict]:
    """XTREME's processed tsv, or a UD treebank's CoNLL-U (treebanks of a language are merged)."""
    return read_conllu(path, UPOS) if path.suffix == ".conllu" else read_token_tsv(path, UPOS)


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    names = dataset.features["pos_tags"].feature.names
    return [
        {"id": f"{language}-{i}", "tokens": list(row["tokens"]), "tags": [names[tag] for tag in row["pos_tags"]]}
        for i, row in enumerate(dataset)
    ]


UDPOS = register(TaskSpec(
    name="udpos",
    description="UD POS tagging (UPOS, XTREME's 33 languages, UD v2.5; XTREME-R's 5 more selectable)",
    head="tagging",
    domain="syntax",
    reader=read_ud,
    files={split: (f"udpos/{split}-{{lang}}.tsv", f"udpos/**/{{lang}}_*-ud-{split}.conllu")
           for split in ("train", "dev", "test")},
    languages=tuple(LANGUAGE_NAMES),
    extra_languages=tuple(XTREME_R_NAMES),
    labels=UPOS,
    scorer=score_tags,
    score_key=metric("f1"),
    main_metrics=("f1", "accuracy"),
    fallback_label="X",
    download_hint=(
        "Run google-research/xtreme's scripts/download_data.sh (udpos/), or give UD treebanks "
        "(DIR/udpos/<any folders>/<lang>_*-ud-<split>.conllu)."
    ),
    hub=(HubSource(path="google/xtreme", name=lambda language: f"udpos.{LANGUAGE_NAMES[language]}",
                   splits={"train": "train", "dev": "validation", "test": "test"}, convert=hub_rows_to_examples,
                   languages=tuple(LANGUAGE_NAMES)),),
    hub_gap=(f"udpos: XTREME-R's extra UD POS languages ({' '.join(XTREME_R_NAMES)}) are not on the Hugging Face Hub "
             "(google/xtreme has XTREME's 33): they come from UD treebanks"),
))
