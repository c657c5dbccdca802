import math

import pytest

from stilts.eval.xtreme import (
    BENCHMARKS,
    XTREME_CATEGORIES,
    XTREME_R_CATEGORIES,
    collect_task_scores,
    xtreme_score,
)

XTREME_FULL = {
    "xnli": 80.0, "pawsx": 90.0,
    "udpos": 70.0, "panx": 60.0,
    "xquad": 60.0, "mlqa": 50.0, "tydiqa": 40.0,
    "bucc": 30.0, "tatoeba": 20.0,
}  # fmt: skip
XTREME_R_FULL = {
    "xnli": 80.0, "xcopa": 60.0,
    "udpos": 70.0, "panx": 60.0,
    "xquad": 60.0, "mlqa": 50.0, "tydiqa": 40.0,
    "tatoeba": 90.0, "mewslix": 30.0, "lareqa": 30.0,
}  # fmt: skip


def test_task_lists() -> None:
    assert XTREME_CATEGORIES == {
        "classification": ("xnli", "pawsx"),
        "structured_prediction": ("udpos", "panx"),
        "question_answering": ("xquad", "mlqa", "tydiqa"),
        "retrieval": ("bucc", "tatoeba"),
    }
    assert XTREME_R_CATEGORIES == {
        "classification": ("xnli", "xcopa"),
        "structured_prediction": ("udpos", "panx"),
        "question_answering": ("xquad", "mlqa", "tydiqa"),
        "retrieval": ("tatoeba", "mewslix", "lareqa"),
    }
    assert sum(map(len, XTREME_CATEGORIES.values())) == 9
    assert sum(map(len, XTREME_R_CATEGORIES.values())) == 10
    assert set(BENCHMARKS) == {"xtreme", "xtreme-r"}


def test_xtreme_full_is_the_mean_of_the_nine_tasks() -> None:
    result = xtreme_score(XTREME_FULL)
    assert result["benchmark"] == "xtreme"
    assert result["aggregation"] == "tasks"
    assert result["categories"] == {
        "classification": 85.0,
        "structured_prediction": 65.0,
        "question_answering": 50.0,
        "retrieval": 25.0,
    }
    # (80+90+70+60+60+50+40+30+20)/9 = 500/9; the mean of the category means would be 56.25.
    assert result["score"] == pytest.approx(500 / 9) == result["task_mean"]
    assert result["category_mean"] == pytest.approx(56.25)  # both rules reported, labelled
    assert result["missing"] == []
    assert result["tasks"] == XTREME_FULL
    assert list(result["tasks"]) == ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc", "tatoeba"]


def test_xtreme_r_full_is_the_mean_of_its_ten_tasks() -> None:
    """evaluate.py --xtreme_version xtreme-r: `all_task` averages every task of XTREME_R_TASK2LANGS."""
    result = xtreme_score(XTREME_R_FULL, "xtreme-r")
    assert result["benchmark"] == "xtreme-r"
    assert result["aggregation"] == "tasks"
    assert result["categories"] == {
        "classification": 70.0,
        "structured_prediction": 65.0,
        "question_answering": 50.0,
        "retrieval": 50.0,
    }
    # 570/10 = 57; the mean of the four category means, reported beside it, is 58.75.
    assert result["score"] == pytest.approx(57.0) == result["task_mean"]
    assert result["category_mean"] == pytest.approx(58.75)
    assert result["missing"] == []


# The mock submission's per-task averages published in google-research/xtreme's evaluate_test.py
# (commit da430dd06cc7344ceb2e7cb030219656ebf0606a, TASK2AVG_SCORES and XTREME_R_TASK2AVG_SCORES).
OFFICIAL_MOCK_XTREME = {
    "pawsx": {"avg_accuracy": 51.42857142857143},
    "xnli": {"avg_accuracy": 30.666666666666668},
    "panx": {"avg_f1": 57.50793650793652},
    "udpos": {"avg_f1": 70.21746048354693},
    "bucc": {"avg_f1": 55.0},
    "tatoeba": {"avg_accuracy": 53.611111111111114},
    "xquad": {"avg_exact_match": 77.27272727272727, "avg_f1": 79.9586776859504},
    "mlqa": {"avg_exact_match": 57.142857142857146, "avg_f1": 81.76870748299321},
    "tydiqa": {"avg_exact_match": 88.88888888888889, "avg_f1": 97.22222222222223},
}
OFFICIAL_MOCK_XTREME_R = {
    "xnli": {"avg_accuracy": 30.666666666666668},
    "mewslix": {"avg_map@20": 14.39025156130419},
    "mlqa": {"avg_exact_match": 57.142857142857146, "avg_f1": 81.76870748299321},
    "tydiqa": {"avg_exact_match": 88.88888888888889, "avg_f1": 97.22222222222223},
}


def _avg_metric(averages: dict[str, float]) -> float:
    """evaluate.py's `avg_metric`: (EM + F1) / 2 for QA, else the task's one headline metric."""
    if "avg_exact_match" in averages:
        return (averages["avg_exact_match"] + averages["avg_f1"]) / 2
    (value,) = averages.values()
    return value


def test_official_mock_submission_gets_evaluate_pys_scores() -> None:
    tasks = {task: _avg_metric(averages) for task, averages in OFFICIAL_MOCK_XTREME.items()}
    result = xtreme_score(tasks)
    # evaluate.py: all_task = sum(avg_metric) / 9; its groups average their tasks.
    assert result["score"] == pytest.approx(sum(tasks.values()) / 9)
    assert round(result["score"], 4) == 62.1732
    assert result["categories"]["classification"] == pytest.approx((51.42857142857143 + 30.666666666666668) / 2)
    assert result["categories"]["question_answering"] == pytest.approx(
        (78.61570247933884 + 69.45578231292518 + 93.05555555555556) / 3
    )
    partial = xtreme_score({task: _avg_metric(a) for task, a in OFFICIAL_MOCK_XTREME_R.items()}, "xtreme-r")
    assert partial["score"] is None  # six XTREME-R tasks have no score in the mock submission
    assert partial["missing"] == ["xcopa", "udpos", "panx", "xquad", "tatoeba", "lareqa"]
    assert partial["categories"]["retrieval"] == pytest.approx(14.39025156130419)


def test_published_xtreme_row_reproduces_the_papers_avg() -> None:
    """mBERT in the XTREME paper's results table (Hu et al. 2020): its Avg is the task mean.

    QA tasks enter as (F1 + EM) / 2, as XTREME's evaluate.py `avg_metric`.
    """
    mbert_xtreme = {
        "xnli": 65.4, "pawsx": 81.9, "udpos": 70.3, "panx": 62.2,
        "xquad": (64.5 + 49.4) / 2, "mlqa": (61.4 + 44.2) / 2, "tydiqa": (59.7 + 43.9) / 2,
        "bucc": 56.7, "tatoeba": 38.7,
    }  # fmt: skip
    result = xtreme_score(mbert_xtreme)
    assert round(result["score"], 1) == 59.6
    assert round(result["category_mean"], 1) == 60.4
    assert round(result["categories"]["retrieval"], 1) == 47.7


def test_partial_tasks_give_category_means_but_no_score() -> None:
    scores = {"xnli": 80.0, "udpos": 70.0, "panx": 60.0, "xquad": 60.0, "mlqa": 50.0}
    result = xtreme_score(scores)
    assert result["score"] is None
    assert result["missing"] == ["pawsx", "tydiqa", "bucc", "tatoeba"]
    assert result["categories"] == {
        "classification": 80.0,  # over the present task only
        "structured_prediction": 65.0,
        "question_answering": 55.0,
        "retrieval": None,
    }
    assert result["tasks"] == scores


def test_one_missing_task_is_enough_to_withhold_the_score() -> None:
    scores = dict(XTREME_R_FULL)
    del scores["lareqa"]
    result = xtreme_score(scores, "xtreme-r")
    assert result["score"] is None
    assert result["missing"] == ["lareqa"]
    assert result["categories"]["retrieval"] == pytest.approx(60.0)


def test_tasks_of_the_other_benchmark_are_ignored() -> None:
    # pawsx and bucc belong to XTREME only; mnli to neither. XTREME-R still finds everything it needs.
    scores = {**XTREME_R_FULL, "pawsx": 1.0, "bucc": 2.0, "mnli": 3.0}
    result = xtreme_score(scores, "xtreme-r")
    assert "pawsx" not in result["tasks"] and "mnli" not in result["tasks"]
    assert result["score"] == pytest.approx(57.0)
    assert xtreme_score(XTREME_R_FULL)["missing"] == ["pawsx", "bucc"]


def test_empty_input() -> None:
    result = xtreme_score({})
    assert result["score"] is None
    assert result["tasks"] == {}
    assert all(value is None for value in result["categories"].values())
    assert len(result["missing"]) == 9


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="xtreme, xtreme-r"):
        xtreme_score(XTREME_FULL, "xglue")
    with pytest.raises(ValueError, match="'xnli'"):
        xtreme_score({**XTREME_FULL, "xnli": math.nan})
    with pytest.raises(ValueError, match="'panx'"):
        xtreme_score({**XTREME_FULL, "panx": "61.0"})


# --- collect_task_scores ---------------------------------------------------------------------------


def _doc(target: str, score: float, seed: int = 0, model: str = "xlmr_large", intermediate=("mnli",)) -> dict:
    return {
        "target": target,
        "intermediate": list(intermediate),
        "model": model,
        "seed": seed,
        "metrics": {"en": {"accuracy": score}},
        "average": {"accuracy": score},
        "score": score,
    }


def test_collect_one_document_per_target() -> None:
    assert collect_task_scores([_doc("xnli", 80.0), _doc("udpos", 70.5)]) == {"xnli": 80.0, "udpos": 70.5}


def test_collect_averages_seeds() -> None:
    documents = [_doc("xnli", 80.0, seed=1), _doc("udpos", 70.0, seed=1), _doc("xnli", 82.0, seed=2),
                 _doc("xnli", 84.5, seed=3)]
    assert collect_task_scores(documents) == {"xnli": pytest.approx((80.0 + 82.0 + 84.5) / 3), "udpos": 70.0}


def test_collect_feeds_xtreme_score() -> None:
    documents = [_doc(task, score, seed=seed) for task, score in XTREME_FULL.items() for seed in (1, 2)]
    assert xtreme_score(collect_task_scores(documents))["score"] == pytest.approx(500 / 9)


def test_collect_rejects_mixed_models() -> None:
    documents = [_doc("xnli", 80.0, model="xlmr_large"), _doc("udpos", 70.0, model="xlmr_base")]
    with pytest.raises(ValueError, match="xlmr_large mnli -> xnli .*xlmr_base mnli -> udpos"):
        collect_task_scores(documents)


def test_collect_rejects_mixed_intermediate_chains() -> None:
    documents = [_doc("xnli", 80.0, intermediate=("mnli",)), _doc("xnli", 81.0, seed=1, intermediate=())]
    with pytest.raises(ValueError, match=r"mnli -> xnli \(seed 0\) and xlmr_large xnli \(seed 1\)"):
        collect_task_scores(documents)
    with pytest.raises(ValueError, match="intermediate"):
        collect_task_scores([_doc("xnli", 80.0, intermediate=("squad", "mnli")),
                             _doc("udpos", 70.0, intermediate=("mnli", "squad"))])


def test_collect_rejects_bad_documents() -> None:
    with pytest.raises(ValueError, match="twice"):
        collect_task_scores([_doc("xnli", 80.0, seed=1), _doc("xnli", 80.0, seed=1)])
    with pytest.raises(ValueError, match="not a finite number"):
        collect_task_scores([_doc("xnli", math.nan)])
    incomplete = _doc("xnli", 80.0)
    del incomplete["model"]
    with pytest.raises(ValueError, match="lacks model"):
        collect_task_scores([incomplete])


def test_collect_empty() -> None:
    assert collect_task_scores([]) == {}
