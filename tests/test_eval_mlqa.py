import warnings
from pathlib import Path

import pytest

from stilts.eval.mlqa import MLQA_LANGUAGES, mlqa, normalize_answer_mlqa
from tests.squad_gold import load_squad_gold

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data_file(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"real data slice {path} is absent (it lives next to the repo, not in it)")
    return path


# --- normalisation, per language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "lang", "normalised"),
    [
        # en: Unicode punctuation (curly quotes, category Pi/Pf) goes too, unlike SQuAD v1.1.
        ("the “Big” cat!", "en", "big cat"),
        ("A «quoted» answer…", "en", "quoted answer"),
        ("rock-n-roll", "en", "rocknroll"),  # deleted, not replaced by a space
        ("theory of the anthem", "en", "theory of anthem"),  # whole words only
        ("5 $ + 3 ° C", "en", "5 3 ° c"),  # ASCII symbols $+ are in string.punctuation; ° (So) is not
        # es
        ("Los gatos y la casa", "es", "gatos y casa"),
        ("Unos perros, unas vacas, el toro", "es", "perros vacas toro"),
        ("Una", "es", ""),
        ("the cat", "es", "the cat"),  # only the answer language's articles
        # de
        ("Der Hund und die Katze", "de", "hund und katze"),
        ("einen Apfel, eines Tages, dem Mann", "de", "apfel tages mann"),
        ("Ein Dieb", "de", "dieb"),
        ("Einsicht der", "de", "einsicht"),  # "ein" only as a whole word
        # vi: the script's "articles" include của (of) and là (is)
        ("Cái bàn của tôi", "vi", "bàn tôi"),
        ("những chiếc xe là đỏ", "vi", "xe đỏ"),
        # hi: no articles, whitespace tokens; the danda (U+0964, Po) is punctuation
        ("यह एक किताब है।", "hi", "यह एक किताब है"),
        ("the book", "hi", "the book"),
        # zh: one token per CJK character, other runs split on whitespace
        ("北京大学", "zh", "北 京 大 学"),
        ("iPhone 4手机，好！", "zh", "iphone 4 手 机 好"),
        ("the 猫", "zh", "the 猫"),
    ],
)
def test_normalize_answer_mlqa(raw: str, lang: str, normalised: str) -> None:
    assert normalize_answer_mlqa(raw, lang) == normalised


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("الكتاب", "كتاب"),  # the definite article
        ("الكتاب الأحمر", "كتاب أحمر"),
        # Quirk: every "ال" is replaced by a space, also inside a word; the first alternative
        # "\sال^" never matches because "^" mid-pattern needs the start of the string.
        ("فالكتاب", "ف كتاب"),
        ("مال", "م"),  # "money": the word's own letters alef-lam go
        ("سؤال", "سؤ"),
        ("ال", ""),
    ],
)
def test_normalize_answer_mlqa_arabic_removes_every_al(raw: str, normalised: str) -> None:
    assert normalize_answer_mlqa(raw, "ar") == normalised


def test_normalize_answer_mlqa_arabic_quirk_splits_tokens_for_f1() -> None:
    # "فالكتاب" (so the book) becomes two tokens ف and كتاب, so against gold "الكتاب" (one token كتاب)
    # precision 1/2, recall 1/1: F1 = 2/3, EM 0.
    scores = mlqa({"q": ["الكتاب"]}, {"q": "فالكتاب"}, "ar")
    assert scores["exact_match"] == 0.0
    assert scores["f1"] == pytest.approx(100 * 2 / 3)


def test_normalize_answer_mlqa_articles_need_nfc() -> None:
    # The regexes hold precomposed (NFC) letters, as in the script: decomposed "của" is not removed.
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "của tôi")
    assert normalize_answer_mlqa(decomposed, "vi") == decomposed  # unchanged
    assert normalize_answer_mlqa("của tôi", "vi") == "tôi"


def test_normalize_answer_mlqa_cjk_range_is_the_scripts() -> None:
    # Only U+4E00..U+9FA5 is split per character; U+9FA6 and beyond (and kana) stay in whitespace runs.
    assert normalize_answer_mlqa("\u9fa5\u9fa5", "zh") == "\u9fa5 \u9fa5"
    assert normalize_answer_mlqa("\u9fa6\u9fa6", "zh") == "\u9fa6\u9fa6"
    assert normalize_answer_mlqa("ひらがな北", "zh") == "ひらがな 北"


@pytest.mark.parametrize("lang", ["fr", "EN", "", "zh-cn"])
def test_unknown_language_is_rejected(lang: str) -> None:
    with pytest.raises(ValueError, match="en, es, hi, vi, de, ar, zh"):
        normalize_answer_mlqa("x", lang)
    with pytest.raises(ValueError, match="unknown MLQA language"):
        mlqa({"q": ["x"]}, {"q": "x"}, lang)


def test_supported_languages() -> None:
    assert set(MLQA_LANGUAGES) == {"en", "es", "hi", "vi", "de", "ar", "zh"}


# --- scores ------------------------------------------------------------------------------------------


def test_mlqa_en_articles_and_unicode_punctuation_exact() -> None:
    scores = mlqa({"q": ["big cat"]}, {"q": "the “Big” cat!"}, "en")
    assert scores == {"exact_match": 100.0, "f1": 100.0}


def test_mlqa_zh_character_f1_by_hand() -> None:
    # gold 北京大学 -> 北 京 大 学 (4 tokens); prediction 北京 -> 北 京 (2): precision 1, recall 1/2, F1 2/3.
    scores = mlqa({"q": ["北京大学"]}, {"q": "北京"}, "zh")
    assert scores["exact_match"] == 0.0
    assert scores["f1"] == pytest.approx(200 / 3)
    # Segmentation makes spacing irrelevant for CJK: "北京 大学" is an exact match.
    assert mlqa({"q": ["北京大学"]}, {"q": "北京 大学"}, "zh") == {"exact_match": 100.0, "f1": 100.0}


def test_mlqa_zh_mixed_tokens_by_hand() -> None:
    # gold "iPhone 4手机" -> iphone 4 手 机 (4); pred "iPhone手机壳" -> iphone 手 机 壳 (4); 3 shared:
    # precision 3/4, recall 3/4, F1 3/4.
    assert mlqa({"q": ["iPhone 4手机"]}, {"q": "iPhone手机壳"}, "zh")["f1"] == pytest.approx(75.0)
    # Under whitespace tokenisation (hi) the same strings share no token at all.
    assert mlqa({"q": ["iPhone 4手机"]}, {"q": "iPhone手机壳"}, "hi")["f1"] == 0.0


def test_mlqa_es_de_vi_articles_in_f1() -> None:
    # es: gold "la casa blanca" -> casa blanca; pred "casa" -> precision 1, recall 1/2 -> 2/3.
    assert mlqa({"q": ["la casa blanca"]}, {"q": "casa"}, "es")["f1"] == pytest.approx(200 / 3)
    # de: "die Katze" vs "eine Katze" are both "katze".
    assert mlqa({"q": ["die Katze"]}, {"q": "eine Katze"}, "de") == {"exact_match": 100.0, "f1": 100.0}
    # vi: "những chiếc xe" vs "xe" match exactly.
    assert mlqa({"q": ["những chiếc xe"]}, {"q": "xe"}, "vi") == {"exact_match": 100.0, "f1": 100.0}
    # The language decides: in en, "die" is not an article, so "die Katze" vs "Katze" is F1 2/3.
    assert mlqa({"q": ["die Katze"]}, {"q": "Katze"}, "en")["f1"] == pytest.approx(200 / 3)


def test_mlqa_hi_has_no_articles() -> None:
    # "एक" (one / a) is not removed: gold एक किताब (2 tokens) vs किताब -> precision 1, recall 1/2.
    scores = mlqa({"q": ["एक किताब"]}, {"q": "किताब"}, "hi")
    assert scores["exact_match"] == 0.0
    assert scores["f1"] == pytest.approx(200 / 3)


def test_mlqa_empty_normalised_gold_quirk() -> None:
    # A gold answer that normalises to "" gives EM 1 but F1 0 for an empty (or all-article) prediction,
    # because F1 is 0 whenever no token is shared; any other prediction scores 0 on both.
    assert mlqa({"q": ["The"]}, {"q": "a"}, "en") == {"exact_match": 100.0, "f1": 0.0}
    assert mlqa({"q": ["ال"]}, {"q": ""}, "ar") == {"exact_match": 100.0, "f1": 0.0}
    assert mlqa({"q": ["The"]}, {"q": "cat"}, "en") == {"exact_match": 0.0, "f1": 0.0}


def test_mlqa_max_over_answers_and_mean_over_questions() -> None:
    gold = {"q1": ["Paris", "the city of Paris"], "q2": ["1990"], "q3": ["red"]}
    predictions = {"q1": "city of Paris", "q2": "1991", "q3": "red"}
    scores = mlqa(gold, predictions, "en")
    # q1: EM 1 (second answer), F1 1; q2: 0, 0; q3: 1, 1.
    assert scores["exact_match"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(200 / 3)


def test_mlqa_missing_prediction_scores_zero_and_warns() -> None:
    gold = {"q1": ["a cat"], "q2": ["dog"], "q3": ["fish"]}
    with pytest.warns(UserWarning, match="2 of 3 questions have no prediction"):
        scores = mlqa(gold, {"q1": "cat", "extra": "ignored"}, "en")
    assert scores == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 / 3)}


def test_mlqa_rejects_bad_gold() -> None:
    with pytest.raises(ValueError, match="no gold questions"):
        mlqa({}, {}, "en")
    with pytest.raises(ValueError, match="no gold answer"):
        mlqa({"q": []}, {"q": "x"}, "en")
    with pytest.raises(ValueError, match="list of texts"):
        mlqa({"q": "cat"}, {"q": "cat"}, "en")


# --- real MLQA dev slices --------------------------------------------------------------------------


LANGS = ["en", "de", "zh", "ar"]


def _gold(lang: str) -> dict[str, list[str]]:
    return load_squad_gold(_data_file(f"mlqa/dev/dev-context-{lang}-question-{lang}.json"))


@pytest.mark.parametrize("lang", LANGS)
def test_real_dev_gold_against_itself_is_perfect(lang: str) -> None:
    gold = _gold(lang)
    predictions = {qid: answers[0] for qid, answers in gold.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mlqa(gold, predictions, lang) == {"exact_match": 100.0, "f1": 100.0}


@pytest.mark.parametrize("lang", LANGS)
def test_real_dev_perturbed_predictions(lang: str) -> None:
    """Perturbations whose effect is known without normalising: the score follows by counting.

    Of the single-answer questions, in file order: every 5th is answered wrongly with a token no
    answer contains (EM 0, F1 0), every 5th+1 is left out (0, 0), every 5th+2 repeats the gold answer
    twice ("x x": every token twice, so precision 1/2, recall 1: EM 0, F1 2/3), and the rest are the
    gold answer with other case and extra spaces (EM 1, F1 1).
    """
    gold = _gold(lang)
    assert all(len(answers) == 1 for answers in gold.values())  # so no other answer can score higher
    predictions: dict[str, str] = {}
    right = doubled = 0
    for i, (qid, (answer,)) in enumerate(gold.items()):
        kind = i % 5
        if kind == 0:
            predictions[qid] = "zzqxv"
        elif kind == 1:
            continue
        elif kind == 2:
            predictions[qid] = f"{answer} {answer}"
            doubled += 1
        else:
            upper = answer.upper()  # unless upper-casing is not undone by lower-casing (ß -> SS)
            predictions[qid] = f"  {upper if upper.lower() == answer.lower() else answer}  "
            right += 1
    total = len(gold)
    with pytest.warns(UserWarning, match=f"{(total + 3) // 5} of {total} questions have no prediction"):
        scores = mlqa(gold, predictions, lang)
    assert scores["exact_match"] == pytest.approx(100 * right / total)
    assert scores["f1"] == pytest.approx(100 * (right + doubled * 2 / 3) / total)
