"""UD POS from CoNLL-U is read exactly as XTREME's download script processes it."""

from __future__ import annotations

from collections import Counter

from stilts.tasks.common.readers import read_token_tsv
from stilts.tasks.udpos import read_conllu
from stilts.tasks.udpos import UPOS

FUSED_GERMAN = {"im", "am", "zum", "zur", "vom", "beim"}


def test_english_ewt_dev_matches_xtremes_processed_file(shared_data) -> None:
    """XTREME's dev-en.tsv merges the English treebanks, EWT first: its first 2002 sentences must be
    exactly what read_conllu makes of UD_English-EWT dev."""
    ours = read_conllu(shared_data / "udpos/v2.5/UD_English-EWT/en_ewt-ud-dev.conllu", UPOS)
    xtreme = read_token_tsv(shared_data / "udpos_xtreme_format/dev-en.tsv", UPOS)[:len(ours)]
    assert len(ours) == 2002
    assert [(s["tokens"], s["tags"]) for s in ours] == [(s["tokens"], s["tags"]) for s in xtreme]


def test_german_multiword_tokens_keep_fused_form_and_head_tag(shared_data) -> None:
    """German GSD writes `im` as a range over `in` + `dem`; XTREME keeps `im` tagged ADP, as its
    processed dev-de.tsv shows for every contraction below."""
    ours = read_conllu(shared_data / "udpos/v2.5/UD_German-GSD/de_gsd-ud-test.conllu", UPOS)
    fused = Counter((t, tag) for s in ours for t, tag in zip(s["tokens"], s["tags"]) if t in FUSED_GERMAN)
    assert sum(fused.values()) > 200
    assert {tag for _, tag in fused} == {"ADP"}
    xtreme = read_token_tsv(shared_data / "udpos_xtreme_format/dev-de.tsv", UPOS)
    xtreme_tags = Counter(tag for s in xtreme for t, tag in zip(s["tokens"], s["tags"]) if t in FUSED_GERMAN)
    assert xtreme_tags.most_common(1)[0][0] == "ADP"
    # Each range of n syntactic words became one token.
    lines = [line.split("\t")[0] for line in
             (shared_data / "udpos/v2.5/UD_German-GSD/de_gsd-ud-test.conllu").read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    words = sum(i.isdigit() for i in lines)
    merged = sum(int(i.split("-")[1]) - int(i.split("-")[0]) for i in lines if "-" in i)
    assert sum(len(s["tokens"]) for s in ours) == words - merged


def test_fused_token_takes_the_tag_of_the_word_nearest_the_root(tmp_path) -> None:
    conllu = tmp_path / "x-ud-train.conllu"
    conllu.write_text(
        "# text = Don't go.\n"
        "1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
        "1\tDo\tdo\tAUX\t_\t_\t3\taux\t_\t_\n"
        "2\tn't\tnot\tPART\t_\t_\t3\tadvmod\t_\t_\n"
        "3\tgo\tgo\tVERB\t_\t_\t0\troot\t_\t_\n"
        "3.1\tgone\tgo\tVERB\t_\t_\t_\t_\t0:root\t_\n"
        "4\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_\n\n"
        "# text = della casa\n"
        "1-2\tdella\t_\t_\t_\t_\t_\t_\t_\t_\n"
        "1\tdi\tdi\tADP\t_\t_\t3\tcase\t_\t_\n"
        "2\tla\til\tDET\t_\t_\t3\tdet\t_\t_\n"
        "3\tcasa\tcasa\tNOUN\t_\t_\t0\troot\t_\t_\n",
        encoding="utf-8",
    )
    sentences = read_conllu(conllu, UPOS)
    assert [(s["tokens"], s["tags"]) for s in sentences] == [
        (["Don't", "go", "."], ["AUX", "VERB", "PUNCT"]),
        (["della", "casa"], ["ADP", "NOUN"]),
    ]


def test_equally_deep_fused_words_follow_the_pos_precedence(tmp_path) -> None:
    """`del` = de (ADP) + el (DET), both attached to the noun: ud-conversion-tools' default precedence
    ranks ADP above DET; its Spanish list too; a word nearer the root always wins."""
    sentence = ("1-2\tdel\t_\t_\t_\t_\t_\t_\t_\t_\n"
                "1\tde\tde\tADP\t_\t_\t3\tcase\t_\t_\n"
                "2\tel\tel\tDET\t_\t_\t3\tdet\t_\t_\n"
                "3\tpueblo\tpueblo\tNOUN\t_\t_\t0\troot\t_\t_\n\n")
    for name in ("es_x-ud-dev.conllu", "xx_x-ud-dev.conllu"):
        path = tmp_path / name
        path.write_text(sentence, encoding="utf-8")
        assert read_conllu(path, UPOS)[0]["tags"] == ["ADP", "NOUN"]
    # Swap the order: DET first in the span, still ADP by precedence.
    swapped = sentence.replace("1\tde\tde\tADP", "1\tel\tel\tDET").replace("2\tel\tel\tDET", "2\tde\tde\tADP")
    path = tmp_path / "es_y-ud-dev.conllu"
    path.write_text(swapped, encoding="utf-8")
    assert read_conllu(path, UPOS)[0]["tags"] == ["ADP", "NOUN"]
