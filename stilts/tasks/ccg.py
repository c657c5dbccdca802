"""CCG supertagging on CCGbank (intermediate task, token tagging with an open supertag set).

CCGbank is licensed by the LDC and cannot be downloaded: convert it to one `token<TAB>supertag` per
line with a blank line between sentences (e.g. from the .auto files), as DIR/ccg/{train,dev}.tsv.
The training data defines the supertag set; a dev supertag never seen in training is scored wrong."""

from functools import partial

from stilts.tasks import register
from stilts.tasks.common.readers import read_token_tsv
from stilts.tasks.common.scoring import metric, score_tag_accuracy
from stilts.tasks.spec import TaskSpec

CCG = register(TaskSpec(
    name="ccg",
    description="CCG supertagging (tagging, supertag set from the training data)",
    head="tagging",
    domain="syntax",
    xstilts_pool=True,
    reader=partial(read_token_tsv, labels=None),
    files={"train": ("ccg/train.tsv",), "dev": ("ccg/dev.tsv",)},
    languages=("en",),
    labels_from_train=True,
    scorer=score_tag_accuracy,
    score_key=metric("accuracy"),
    main_metrics=("accuracy",),
    fallback_label="<other>",
    download_hint=("CCGbank is LDC-licensed (LDC2005T13) and has no public download: convert it to "
                   "`token<TAB>supertag` lines, blank line between sentences, as DIR/ccg/train.tsv and "
                   "DIR/ccg/dev.tsv (sections 02-21 train, 00 dev)."),
))
