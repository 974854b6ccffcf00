"""Plain helpers the tests call: tiny datasets and runs (`helpers.data`), a server in a thread
(`helpers.serve`), training projects (`helpers.train`), subprocesses killed as a group (`helpers.processes`).

One way to share test code: fixtures live in `tests/conftest.py`, where pytest finds them (never import
conftest); plain functions and classes live in this package and are imported (`from helpers.data import
register_dataset`; `tests/` is on the path through pyproject's `pythonpath`). No test module imports
another.
"""
