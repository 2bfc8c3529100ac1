"""Training: the config, the launch plan, the one loop for one or many processes."""
