"""Architectures, the registry that builds them, checkpoints, and where weights come from."""
