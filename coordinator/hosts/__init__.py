"""Hosts: the agent client, SSH sessions, the agent bundle, the hosts file."""
