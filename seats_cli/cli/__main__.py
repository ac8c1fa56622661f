"""`python -m seats_cli.cli`: the `seats` command."""

from seats_cli.cli import main

main()
