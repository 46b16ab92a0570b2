"""What a host needs before a run: revisions synced, images, builds."""
