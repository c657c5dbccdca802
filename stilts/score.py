"""`python -m stilts.score`: score a prediction file against gold with the official-parity metrics (stilts.cli.score)."""

import sys

from stilts.cli.score import main

if __name__ == "__main__":
    sys.exit(main())
