"""`python -m cli`: the same as the `shipyard` script (what `shipyard up` runs its API with)."""

from cli.main import main

main()
