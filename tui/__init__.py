"""The Textual TUI (issue 5; not built yet). It will speak only the Coordinator API."""
