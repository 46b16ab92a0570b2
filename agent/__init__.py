"""convoy agent: runs on each host, starts containers and keeps their output and results."""
