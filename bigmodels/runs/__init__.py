"""Launched runs: the run store, event recording and the worker that executes them."""
