"""TyDiQA-GoldP: extractive QA trained on English, evaluated zero-shot in 9 languages (target task)."""

from stilts.tasks import register
from stilts.tasks.common.readers import TRANSLATED_SQUAD, read_squad_json
from stilts.tasks.common.scoring import qa_score, score_squad_v1
from stilts.tasks.spec import HubSource, TaskSpec

LANGUAGE_NAMES = {
    "en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian",
    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu",
}


def hub_rows_to_examples(dataset, language: str) -> list[dict]:
    """The Hub's secondary_task holds all languages; ids start with the language name."""
    prefix = LANGUAGE_NAMES[language] + "-"
    return [
        {"id": row["id"], "context": row["context"], "question": row["question"],
         "answers": {"text": list(row["answers"]["text"]), "answer_start": list(row["answers"]["answer_start"])}}
        for row in dataset
        if row["id"].startswith(prefix)
    ]


TYDIQA = register(TaskSpec(
    name="tydiqa",
    description="TyDiQA-GoldP (span QA, 9 languages; the dev set is XTREME's test set)",
    head="span_qa",
    domain="qa",
    reader=read_squad_json,
    files={
        # XTREME's per-language gold train files, else XTREME's translate-train (gs://xtreme_translations/TyDiQA-GoldP)
        "train": ("tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.{lang}.train.json",
                  "xtreme_translations/TyDiQA-GoldP/translate-train/tydiqa.translate.train.en-{lang}.json"),
        "dev": ("tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json",),
    },
    file_readers=TRANSLATED_SQUAD,
    languages=tuple(LANGUAGE_NAMES),
    scorer=score_squad_v1,
    score_key=qa_score,
    main_metrics=("exact_match", "f1"),
    download_hint=(
        "Run google-research/xtreme's scripts/download_data.sh (it strips dev answers: put the original "
        "TyDiQA-GoldP v1.1 dev files, renamed tydiqa.goldp.<lang>.dev.json, in their place to score)."
    ),
    hub=(HubSource(path="google-research-datasets/tydiqa", name=lambda language: "secondary_task",
                  splits={"train": "train", "dev": "validation"}, convert=hub_rows_to_examples),),
))
