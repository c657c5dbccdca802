import json
import warnings
from pathlib import Path

import pytest

from stilts.eval.qa import (
    exact_match_score,
    f1_score,
    normalize_answer,
    squad_v1,
    squad_v2,
)
from tests.squad_gold import load_squad_gold

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data_file(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"real data slice {path} is absent (it lives next to the repo, not in it)")
    return path


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --- normalisation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The Cat", "cat"),
        ("a  cat,\tAn apple!", "cat apple"),
        ("theory of the anthem", "theory of anthem"),  # articles only as whole words
        ("U.S.A.", "usa"),
        ("rock-n-roll", "rocknroll"),  # punctuation is deleted, not replaced by a space
        ("“quoted”", "“quoted”"),  # only ASCII string.punctuation is removed
        ("the", ""),
        ("  ", ""),
    ],
)
def test_normalize_answer(raw: str, normalised: str) -> None:
    assert normalize_answer(raw) == normalised


def test_normalize_answer_removes_punctuation_before_articles() -> None:
    # "the," only becomes the article "the" once the comma is gone: official order is punc, then articles.
    assert normalize_answer("the,end") == "theend"
    assert normalize_answer("(the) end") == "end"


# --- v1.1 per-answer scores ----------------------------------------------------------------------


def test_exact_match_ignores_case_articles_punctuation() -> None:
    assert exact_match_score("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match_score("Eiffel Tower", "Eiffel") == 0.0


def test_partial_f1_by_hand() -> None:
    # pred "the big cat" -> [big, cat]; gold "a cat" -> [cat]; 1 shared token.
    # precision 1/2, recall 1/1, F1 = 2 * 0.5 * 1 / 1.5 = 2/3.
    assert f1_score("the big cat", "a cat") == pytest.approx(2 / 3)
    assert exact_match_score("the big cat", "a cat") == 0.0


def test_f1_counts_repeated_tokens_as_a_multiset() -> None:
    # pred [cat, cat, cat] vs gold [cat, dog]: shared = min counts = 1; P = 1/3, R = 1/2, F1 = 0.4.
    assert f1_score("cat cat cat", "cat dog") == pytest.approx(0.4)


def test_empty_normalised_gold_quirk_v11() -> None:
    # Official v1.1 (and a real MLQA es dev answer): EM compares "" == "" -> 1, F1 has no shared token -> 0.
    assert exact_match_score("", "the") == 1.0
    assert f1_score("", "the") == 0.0
    assert squad_v1({"q": ["the"]}, {"q": "a"}) == {"exact_match": 100.0, "f1": 0.0}


# --- v1.1 aggregate ------------------------------------------------------------------------------


def test_squad_v1_max_over_golds_and_mean_over_questions() -> None:
    gold = {"q1": ["a cat", "the big cat"], "q2": ["Paris"], "q3": ["red"]}
    predictions = {"q1": "big cat", "q2": "in Paris", "q3": "red", "extra": "ignored"}
    # q1: EM max(0, 1) = 1, F1 1; q2: EM 0, F1 = 2 * (1/2) * 1 / 1.5 = 2/3; q3: 1 / 1.
    scores = squad_v1(gold, predictions)
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 3)


def test_squad_v1_missing_prediction_scores_zero_and_warns() -> None:
    with pytest.warns(UserWarning, match="1 of 2 questions have no prediction"):
        scores = squad_v1({"q1": ["yes"], "q2": ["no"]}, {"q1": "yes"})
    assert scores == {"exact_match": 50.0, "f1": 50.0}


def test_squad_v1_rejects_question_without_answer_and_empty_gold() -> None:
    with pytest.raises(ValueError, match="'q1' has no gold answer"):
        squad_v1({"q1": []}, {"q1": ""})
    with pytest.raises(ValueError, match="no gold questions"):
        squad_v1({}, {"q1": ""})
    with pytest.raises(ValueError, match="must be a list of texts"):
        squad_v2({"q1": "Paris"}, {"q1": "Paris"})


def test_squad_v1_xquad_en_matches_official_script() -> None:
    gold = load_squad_gold(_data_file("xquad/xquad.en.json"))
    predictions = _read_json(_data_file("squad_v1_predictions/pred.BERT_ensemble_GoogleAI.v1.1.json"))
    assert len(gold) == 1190
    assert len(predictions) > len(gold)  # full SQuAD dev predictions: gold defines the question set
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every XQuAD-en id is answered
        scores = squad_v1(gold, predictions)
    assert round(scores["exact_match"], 3) == 74.874
    assert round(scores["f1"], 3) == 86.325


# --- v2.0 ------------------------------------------------------------------------------------------


def test_squad_v2_no_answer_question() -> None:
    right = squad_v2({"q": []}, {"q": ""})
    assert right == {
        "exact": 100.0, "f1": 100.0, "total": 1, "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 1
    }
    wrong = squad_v2({"q": []}, {"q": "Normandy"})
    assert (wrong["exact"], wrong["f1"], wrong["NoAns_total"]) == (0.0, 0.0, 1)
    assert "HasAns_total" not in wrong


def test_squad_v2_empty_prediction_for_answerable_question_scores_zero() -> None:
    scores = squad_v2({"q": ["France"]}, {"q": ""})
    assert scores == {
        "exact": 0.0, "f1": 0.0, "total": 1, "HasAns_exact": 0.0, "HasAns_f1": 0.0, "HasAns_total": 1
    }


def test_squad_v2_empty_normalised_gold_is_dropped() -> None:
    # v2.0 drops gold answers that normalise to "" and falls back to [""], so the v1.1 F1 quirk vanishes:
    # an empty prediction scores 1/1. The question still counts as HasAns (its answer list is non-empty).
    scores = squad_v2({"q": ["the"]}, {"q": ""})
    assert (scores["exact"], scores["f1"], scores["HasAns_total"]) == (100.0, 100.0, 1)
    assert "NoAns_total" not in scores


def test_squad_v2_partial_f1_and_subsets() -> None:
    gold = {"q1": ["a cat", "the big cat"], "q2": ["Paris"], "q3": []}
    predictions = {"q1": "big cat", "q2": "in Paris", "q3": ""}
    scores = squad_v2(gold, predictions)
    # HasAns: q1 EM 1 F1 1; q2 EM 0 F1 2/3. NoAns: q3 1 / 1.
    assert scores["HasAns_exact"] == pytest.approx(50.0)
    assert scores["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert (scores["NoAns_exact"], scores["NoAns_f1"]) == (100.0, 100.0)
    assert scores["exact"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 3)
    assert (scores["total"], scores["HasAns_total"], scores["NoAns_total"]) == (3, 2, 1)


def test_squad_v2_missing_prediction_scores_zero_and_warns() -> None:
    with pytest.warns(UserWarning, match="first: q2"):
        scores = squad_v2({"q1": [], "q2": []}, {"q1": ""})
    assert (scores["exact"], scores["total"], scores["NoAns_total"]) == (50.0, 2, 2)


def test_squad_v2_subset_matches_official_script() -> None:
    gold = load_squad_gold(_data_file("squad_v2_subset/dev-v2.0.Normans_Rhine.json"))
    predictions = _read_json(_data_file("squad_v2_subset/pred.BERT_single_GoogleAI.v2.0.json"))
    scores = squad_v2(gold, predictions)
    assert round(scores["exact"], 2) == 78.05
    assert round(scores["f1"], 2) == 81.22
    assert (scores["total"], scores["HasAns_total"], scores["NoAns_total"]) == (706, 386, 320)


# --- loading ---------------------------------------------------------------------------------------


def _write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "gold.json"
    path.write_text(content, encoding="utf-8")
    return path


def test_load_squad_gold_reads_answers_in_file_order(tmp_path: Path) -> None:
    dataset = {
        "data": [
            {
                "paragraphs": [
                    {
                        "qas": [
                            {"id": "b", "answers": [{"text": "x", "answer_start": 0}, {"text": "y"}]},
                            {"id": "a", "answers": [], "is_impossible": True},
                            {"id": "c", "is_impossible": True},
                        ]
                    }
                ]
            }
        ]
    }
    gold = load_squad_gold(_write(tmp_path, json.dumps(dataset)))
    assert list(gold.items()) == [("b", ["x", "y"]), ("a", []), ("c", [])]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "Expecting property name"),
        ("[]", "top level is a list"),
        ('{"version": "1.1"}', "top level has no key 'data'"),
        ('{"data": [{"paragraphs": [{}]}]}', r"data\[0\]\.paragraphs\[0\] has no key 'qas'"),
        ('{"data": [{"paragraphs": [{"qas": [{"answers": []}]}]}]}', "has no key 'id'"),
        ('{"data": [{"paragraphs": [{"qas": [{"id": "q"}]}]}]}', "qas\\[0\\] has no key 'answers'"),
        ('{"data": [{"paragraphs": [{"qas": [{"id": "q", "answers": [{"start": 1}]}]}]}]}', "has no key 'text'"),
        ('{"data": [{"paragraphs": [{"qas": [{"id": 7, "answers": []}]}]}]}', "id is 7, not a string"),
        ('{"data": [{"paragraphs": "qas"}]}', "'paragraphs' is a str, expected a list"),
        ('{"data": []}', "contains no questions"),
    ],
)
def test_load_squad_gold_explains_malformed_files(tmp_path: Path, content: str, reason: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ValueError, match=reason) as error:
        load_squad_gold(path)
    assert str(path) in str(error.value)


def test_load_squad_gold_rejects_duplicate_ids_in_real_file() -> None:
    # XTREME's TyDiQA-GoldP *train* files reuse ids ("0", "1", ...): {qid: answer} predictions can't score them.
    with pytest.raises(ValueError, match="question id '0' occurs again"):
        load_squad_gold(_data_file("tydiqa_goldp/tydiqa.goldp.en.train.json"))


def test_squad_v2_best_thresholds_by_hand() -> None:
    """Hand-computed: start at 2/4 right (every question unanswered), switch q1 (odds 0.1, right):
    3/4; q4 (0.2, empty prediction): still 3; q3 (0.8, an answer to an unanswerable): 2; q2 (0.9,
    wrong): 2. Best 75 at threshold 0.1; the predictions as given score 50."""
    from stilts.eval.qa import squad_v2

    gold = {"q1": ["Paris"], "q2": ["Rome"], "q3": [], "q4": []}
    predictions = {"q1": "Paris", "q2": "Berlin", "q3": "x", "q4": ""}
    odds = {"q1": 0.1, "q2": 0.9, "q3": 0.8, "q4": 0.2}
    result = squad_v2(gold, predictions, odds)
    assert result["exact"] == 50.0 and result["best_exact"] == 75.0 and result["best_exact_thresh"] == 0.1
    assert result["best_f1"] == 75.0 and result["best_f1_thresh"] == 0.1
    assert "best_exact" not in squad_v2(gold, predictions)  # without odds: the scores of the plain script
    with pytest.raises(ValueError, match="no no-answer odds"):
        squad_v2(gold, predictions, {"q1": 0.1})


def test_squad_v2_best_f1_uses_partial_credit() -> None:
    from stilts.eval.qa import squad_v2

    gold = {"a": ["the big red house"], "b": []}
    result = squad_v2(gold, {"a": "big red", "b": "house"}, {"a": -1.0, "b": 0.5})
    # "big red" vs "big red house" (articles dropped): F1 0.8. Switching a on (odds -1) adds 0.8 to
    # b's 1 (unanswered, right): 1.8 / 2; switching b on too would cost 1.
    assert result["best_f1"] == pytest.approx(90.0) and result["best_exact"] == 50.0
    assert result["best_f1_thresh"] == -1.0
