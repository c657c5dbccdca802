"""`python -m stilts.rank target=NAME [candidates=[...]] [method=...]`: rank intermediate tasks for
a target before training them, from transferability estimates (`stilts.run.ranking`); prints the ranked
table and writes ranking.json and ranking.csv into the run folder (conf/rank.yaml: hydra.run.dir).

It composes the training config (conf/rank.yaml extends conf/config.yaml), so `experiment=`,
`model=`, `seed=` and the other settings mean what they mean to `stilts.train`, and the candidates'
trained stages are found in the stage store under the same keys. Bad input is one `error:` line and
exit code 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

import stilts.cli.resolvers  # noqa: F401  (registers the ${stilts.*:} resolvers the configs use)
from stilts.errors import StiltsError

log = logging.getLogger("stilts")


class RankChecks(Callback):
    """Hydra callback (conf/rank.yaml: hydra.callbacks): the settings are checked before any folder is made."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from stilts.checks import check_rank_config, check_writable
        from stilts.tasks import use_search_path

        use_search_path(config.hydra.searchpath)
        try:
            check_rank_config(config)
            check_writable(config.hydra.run.dir, "hydra.run.dir")
        except (StiltsError, OmegaConfBaseException) as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            sys.exit(2)


@hydra.main(version_base="1.3", config_path="pkg://stilts.conf", config_name="rank")
def main(cfg: DictConfig) -> None:
    from stilts.run.ranking import rank
    from stilts.run.ranking_table import format_ranking, write_ranking

    try:
        document = rank(cfg)
    except (StiltsError, OmegaConfBaseException) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    folder = Path(HydraConfig.get().runtime.output_dir)
    json_path, csv_path = write_ranking(document, folder)
    print(format_ranking(document), flush=True)
    log.info("Wrote %s and %s", json_path, csv_path)

