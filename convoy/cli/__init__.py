"""The `convoy` command line: a client of the Coordinator API (and the launcher of `convoy up`)."""
