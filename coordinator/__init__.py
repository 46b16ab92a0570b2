"""The coordinator: tracks hosts and capacity, places runs, keeps the store, serves the API."""
