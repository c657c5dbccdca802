"""Masked language modelling on plain multilingual text: continued pre-training during
intermediate training (a stage of its own, or a member of a mixture such as squad + mlm)."""

from stilts.tasks import register
from stilts.tasks.common.readers import read_text_lines
from stilts.tasks.panx import LANGUAGES as XTREME_LANGUAGES
from stilts.tasks.common.scoring import metric, score_mlm
from stilts.tasks.spec import TaskSpec

MLM = register(TaskSpec(
    name="mlm",
    description="masked-LM text (one sentence or paragraph per line, one file per language)",
    head="mlm",
    domain="language_modelling",
    reader=read_text_lines,
    files={"train": ("mlm/{lang}.txt",), "dev": ("mlm/{lang}.dev.txt",)},
    languages=XTREME_LANGUAGES,  # XTREME's 40 languages
    scorer=score_mlm,
    score_key=metric("accuracy"),
    main_metrics=("accuracy", "perplexity"),
    download_hint=("Put one text file per language under DIR/mlm/ (e.g. Wikipedia or CC-100 extracts): <lang>.txt "
                   "for training and a held-out <lang>.dev.txt (e.g. its last 1000 lines) for model selection."),
))
