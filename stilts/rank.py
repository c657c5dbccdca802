"""`python -m stilts.rank`: rank intermediate tasks for a target from transferability estimates (stilts.cli.rank)."""

from stilts.cli.entry import run_hydra
from stilts.cli.rank import main
from stilts.settings import RankConfig

if __name__ == "__main__":
    run_hydra(main, RankConfig)
