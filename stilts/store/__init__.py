"""The stage store (`paths.stages_dir`): one folder per trained stage, shared by every run.

`stages` keeps folders whole and trustworthy (locks, checksums, publishing, dropping an encoder);
`encoders` says which encoders a run reads and drops target stages' ones; `inventory` reads what
the store holds; `cleanup` removes what nothing uses; `python -m
stilts.store du|ls|verify|gc` shows, checks and cleans it. The store knows folders, keys and
files, not models.
"""
