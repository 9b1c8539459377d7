"""Shipyard's benchmark harness: `python -m bench` (or `make bench`) writes docs/benchmarks.md.

Every scenario starts real processes (`shipyard api`, `shipyard worker …`, Celery workers of the
raw baseline) against one Redis and one throw-away PostgreSQL database, and measures from the
outside, so that each comparison runs side by side in one invocation.
"""
