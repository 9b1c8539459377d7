"""`python -m shipyard`: the `shipyard` script (what `shipyard up` runs its API and router with)."""

from shipyard.cli.main import main

main()
