"""`python -m stilts.prepare`: fetch and check the data and models a stilts.train command needs, before running it (stilts.cli.prepare)."""

from stilts.cli.prepare import main

if __name__ == "__main__":
    main()
