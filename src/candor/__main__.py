"""`python -m candor` runs the command line."""

from candor.cli.app import main

main()
