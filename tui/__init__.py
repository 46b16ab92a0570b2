"""The Textual TUI (`convoy tui`): runs, logs and allocations over the coordinator's API."""
