"""`python -m tailorlm.cli`: the same as the `tailorlm` command."""

from tailorlm.cli import main

main()
