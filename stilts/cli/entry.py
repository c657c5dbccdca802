"""How every Hydra CLI of stilts starts: a config that cannot be composed (a wrong type, a config
group option that does not exist, a malformed override) ends in one `error:` line and exit 2, like
every other bad input, instead of Hydra's multi-line report."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from stilts.settings import StiltsConfig, explain


def run_hydra(main: Callable[[], None], schema: type = StiltsConfig) -> None:
    """Run a `@hydra.main` function; `schema` types the config it composes (stilts.settings)."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra raises what it would print, so it is said once
    try:
        main()
    except (HydraException, OmegaConfBaseException) as error:
        print(f"error: {explain(error, schema)}", file=sys.stderr, flush=True)
        sys.exit(2)
