"""XQuAD: extractive QA trained on English SQuAD v1.1, evaluated zero-shot in 11 languages (target)."""

from stilts.tasks import register
from stilts.tasks.common.readers import TRANSLATED_SQUAD, read_squad_json
from stilts.tasks.common.scoring import qa_score, score_squad_v1
from stilts.tasks.spec import HubSource, TaskSpec
from stilts.tasks.squad import hub_rows_to_examples

LANGUAGES = ("en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi")
SQUAD_V1 = HubSource(path="rajpurkar/squad", name=lambda language: None,
                     splits={"train": "train", "dev": "validation"}, convert=hub_rows_to_examples, languages=("en",))

XQUAD = register(TaskSpec(
    name="xquad",
    description="XQuAD (span QA, 11 languages; trained and selected on SQuAD v1.1)",
    head="span_qa",
    domain="qa",
    reader=read_squad_json,
    files={  # train/dev: SQuAD v1.1, or XTREME's translations of it (gs://xtreme_translations/SQuAD, copied as is)
        "train": ("squad/train-v1.1.json", "xtreme_translations/SQuAD/translate-train/squad.translate.train.en-{lang}.json"),
        "dev": ("squad/dev-v1.1.json", "xtreme_translations/SQuAD/translate-dev/squad.translate.dev.en-{lang}.json"),
        "test": ("xquad/xquad.{lang}.json",)},
    file_readers=TRANSLATED_SQUAD,
    languages=LANGUAGES,
    scorer=score_squad_v1,
    score_key=qa_score,
    main_metrics=("exact_match", "f1"),
    download_hint=("Run google-research/xtreme's scripts/download_data.sh (it strips XQuAD answers: put the "
                   "original deepmind/xquad files in xquad/ to score) and use its download/ folder as data.root."),
    hub=(SQUAD_V1, HubSource(path="google/xquad", name=lambda language: f"xquad.{language}",
                             splits={"test": "validation"}, convert=hub_rows_to_examples)),
))
