"""Universal Dependencies POS tagging: trained on English, evaluated zero-shot in XTREME's 33 languages."""

import re
from collections.abc import Sequence
from pathlib import Path

from stilts.errors import StiltsError
from stilts.tasks import register
from stilts.tasks.common.readers import check_label, numbered_lines, read_token_tsv
from stilts.tasks.common.scoring import metric, score_tags
from stilts.tasks.spec import Example, HubSource, TaskSpec


def _depth(word: int, heads: dict[int, int]) -> int:
    """Number of ancestors of a word (a broken HEAD chain stops the walk instead of looping)."""
    depth, seen = 0, {word}
    while heads.get(word, 0) != 0 and heads[word] not in seen:
        word = heads[word]
        seen.add(word)
        depth += 1
    return depth

# ud-conversion-tools' POS precedence, which XTREME's conversion uses to choose the head of a
# multi-word token when several of its words are equally close to the root.
_FUSED_HEAD_PRECEDENCE = {
    "default": "VERB NOUN PROPN PRON ADJ NUM ADV INTJ AUX ADP DET PART CCONJ SCONJ X PUNCT".split(),
    "es": "VERB AUX PRON ADP DET".split(),
    "fr": "VERB AUX PRON NOUN ADJ ADV ADP DET PART SCONJ CONJ".split(),
    "it": "VERB AUX ADV PRON ADP DET INTJ".split(),
}

def _fused_head(span: list[int], heads: dict[int, int], tags: dict[int, str], language: str) -> int:
    """The word of a multi-word token nearest the root; ties go to the language's POS precedence."""
    depths = {word: _depth(word, heads) for word in span}
    highest = [word for word in span if depths[word] == min(depths.values())]
    precedence = _FUSED_HEAD_PRECEDENCE.get(language, _FUSED_HEAD_PRECEDENCE["default"])
    return min(highest, key=lambda w: precedence.index(tags[w]) if tags[w] in precedence else len(precedence))

def _ud_sentence(rows: list[tuple[str, list[str]]], labels: Sequence[str], language: str) -> tuple[list[str], list[str]]:
    """Words and UPOS of one CoNLL-U sentence the way XTREME's conversion makes them: a multi-word
    token keeps its fused surface form and takes the UPOS of its head word (see _fused_head); empty
    nodes are dropped; spaces and zero-width non-joiners inside a word are removed."""
    words: dict[int, tuple[str, str]] = {}
    heads: dict[int, int] = {}
    spans: dict[int, tuple[int, str]] = {}
    for where, fields in rows:
        if "." in fields[0]:
            continue
        if "-" in fields[0]:
            first, last = (int(part) for part in fields[0].split("-"))
            spans[first] = (last, fields[1])
            continue
        word = int(fields[0])
        form = "".join(fields[1].replace("\u200c", "").split(" "))
        words[word] = (form, check_label(fields[3], labels, where))
        heads[word] = int(fields[6]) if fields[6].isdigit() else 0
    tokens, tags, word = [], [], 1
    while word in words:
        if word in spans:
            last, form = spans[word]
            span = [w for w in range(word, last + 1) if w in words]
            head = _fused_head(span, heads, {w: words[w][1] for w in span}, language)
            tokens.append("".join(form.replace("\u200c", "").split(" ")))
            tags.append(words[head][1])
            word = last + 1
        else:
            tokens.append(words[word][0])
            tags.append(words[word][1])
            word += 1
    return tokens, tags

_CONLLU_ID = re.compile(r"[0-9]+(-[0-9]+|\.[0-9]+)?")

def read_conllu(path: Path, labels: Sequence[str]) -> list[Example]:
    """CoNLL-U (UD treebanks), one example per sentence, multi-word tokens fused as in XTREME."""
    examples: list[Example] = []
    rows: list[tuple[str, list[str]]] = []
    start = 1
    for number, line in [*numbered_lines(path), (-1, "")]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if rows:
                tokens, tags = _ud_sentence(rows, labels, path.name.split("_")[0])
                blanked = tokens.count("_")  # XTREME drops sentences whose words are withheld ("_")
                if blanked == 0 or blanked < len(tokens) - 1:
                    examples.append({"id": f"{path.stem}-{start}", "tokens": tokens, "tags": tags})
            rows, start = [], number + 1
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise StiltsError(f"{path}:{number}: CoNLL-U needs 10 tab-separated columns, found {len(fields)}")
        if not _CONLLU_ID.fullmatch(fields[0]):
            raise StiltsError(
                f"{path}:{number}: CoNLL-U ID {fields[0]!r} is not a word index (1), a range (1-2) "
                "or an empty node (1.1)"
            )
        rows.append((f"{path}:{number}", fields))
    return examples

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
