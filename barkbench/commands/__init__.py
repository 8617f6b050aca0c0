"""The commands of barkbench/cli.py, one module per thing they work on: runs.py (train, generate,
inspect), info.py (runs, validate, configs), studies.py (compare, report)."""
