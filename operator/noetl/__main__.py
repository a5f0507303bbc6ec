"""`python -m noetl` is the `noetl` command (the operator image runs it this way)."""

from noetl.cli import main

main()
