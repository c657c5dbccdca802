"""The command lines: each composes its settings, calls the library and prints; nothing else lives
here. `python -m stilts.train | prepare | score | rank` run them (the top-level entry modules),
`python -m stilts.report | store | sweep` are packages of their own."""
