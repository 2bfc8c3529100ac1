"""Launched runs: the run store, queueing, event recording, sweeps as tagged runs,
evaluations, and where a model's weights come from (``sources``); ``bigmodels.cluster``
executes them on Ray."""
