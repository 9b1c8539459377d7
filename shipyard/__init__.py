"""Shipyard: build → release → run, on your own machines.

The one import package of the distribution. Its parts are the repository's rooms, linked in:
`shipyard.shared` (the hallway: settings, models, services), `shipyard.workers` (the Celery pools),
`shipyard.api` (FastAPI), `shipyard.cli` (the `shipyard` command), `shipyard.serve` (supervised
processes: `up`, the run host's router agent) and `shipyard.router` (the HAProxy library).
"""
