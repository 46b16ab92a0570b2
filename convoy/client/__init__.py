"""convoy's Python client."""
