"""Architectures, the registry that builds them, their cost, checkpoints and the shipped
weights (where a model's weights come from, shipped or a run, is ``bigmodels.runs.sources``)."""
