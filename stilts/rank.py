"""`python -m stilts.rank`: rank intermediate tasks for a target from transferability estimates (stilts.cli.rank)."""

from stilts.cli.rank import main

if __name__ == "__main__":
    main()
