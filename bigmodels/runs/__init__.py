"""Launched runs: the run store, event recording; ``bigmodels.cluster`` executes them on Ray."""
