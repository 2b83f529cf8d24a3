"""``python -m streams``: the dialguard command line."""

from streams.cli import main

main()
