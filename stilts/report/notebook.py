"""For the question notebooks: the sweep folder to analyse, either a real sweep's (STILTS_SWEEP) or
one the notebook runs at quickstart size with the real CLI (finished runs are skipped, so a rerun
only reads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stilts.errors import StiltsError


def sweep_folder(experiment: str, output: str | Path | None = None) -> Path:
    """$STILTS_SWEEP when set (a real sweep's folder: nothing is run); else the runs folder of
    `python -m stilts.train -m experiment=EXPERIMENT paths.output_dir=OUTPUT`, run here (OUTPUT:
    `output`, else $STILTS_OUTPUT, else ./outputs)."""
    if os.environ.get("STILTS_SWEEP"):
        return Path(os.environ["STILTS_SWEEP"])
    output = Path(output or os.environ.get("STILTS_OUTPUT", "outputs"))
    command = [sys.executable, "-m", "stilts.train", "-m", f"experiment={experiment}", f"paths.output_dir={output}",
               "trainer.enable_progress_bar=false"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise StiltsError(f"the sweep `{' '.join(command[1:])}` failed (exit {done.returncode}):\n{tail}")
    return output / "runs"
