"""Runs and their attempts: the pure lifecycle, its events and actions."""
