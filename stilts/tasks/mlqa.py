"""MLQA: extractive QA trained on English SQuAD v1.1, evaluated zero-shot in 7 languages with MLQA's
own answer normalisation (target)."""

from stilts.tasks import register
from stilts.tasks.common.readers import TRANSLATED_SQUAD, read_squad_json
from stilts.tasks.common.scoring import qa_score, score_mlqa
from stilts.tasks.spec import HubSource, TaskSpec
from stilts.tasks.squad import hub_rows_to_examples

LANGUAGES = ("en", "es", "de", "ar", "hi", "vi", "zh")

MLQA = register(TaskSpec(
    name="mlqa",
    description="MLQA (span QA, 7 languages, context and question in the same language)",
    head="span_qa",
    domain="qa",
    reader=read_squad_json,
    files={
        "train": ("squad/train-v1.1.json", "xtreme_translations/SQuAD/translate-train/squad.translate.train.en-{lang}.json"),
        "dev": ("mlqa/MLQA_V1/dev/dev-context-{lang}-question-{lang}.json",),
        "test": ("mlqa/MLQA_V1/test/test-context-{lang}-question-{lang}.json",),
    },
    file_readers=TRANSLATED_SQUAD,
    languages=LANGUAGES,
    scorer=score_mlqa,
    scorer_needs_language=True,
    score_key=qa_score,
    main_metrics=("exact_match", "f1"),
    download_hint=("Run google-research/xtreme's scripts/download_data.sh (it strips MLQA test answers: use "
                   "target.eval_split=dev or the original MLQA_V1 files) and use its download/ folder as data.root."),
    # facebook/mlqa holds only a loading script, which `datasets` >= 4 refuses: XTREME's own repository
    # serves MLQA as parquet (configs MLQA.<context language>.<question language>).
    hub=(HubSource(path="rajpurkar/squad", name=lambda language: None, splits={"train": "train"},
                   convert=hub_rows_to_examples, languages=("en",)),
         HubSource(path="google/xtreme", name=lambda language: f"MLQA.{language}.{language}",
                   splits={"dev": "validation", "test": "test"}, convert=hub_rows_to_examples)),
))
