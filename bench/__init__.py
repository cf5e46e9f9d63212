"""Benchmarks: `python -m bench` runs them all and prints one table; `python -m bench api`
or `python -m bench motion` runs one. Every row compares against a baseline measured in
the same run on the same machine, so the ratio column is what to read."""
