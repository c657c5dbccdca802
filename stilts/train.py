"""`python -m stilts.train`: compose the config, run the pipeline (one run or a sweep), print the results table (stilts.cli.train)."""

from stilts.cli.entry import run_hydra
from stilts.cli.train import main

if __name__ == "__main__":
    run_hydra(main)
