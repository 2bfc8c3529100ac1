"""The model service: trained models behind an HTTP API on Ray Serve (API keys,
dynamic batching, replicas), and what the app needs to run and watch it.

``bigmodels.cluster.runtime`` is imported first, here: it puts Ray's
environment (auth token, usage statistics off) in place, and Ray reads it at
``import ray``, which the modules of this package do.
"""
from bigmodels.cluster import runtime as _runtime  # noqa: F401  (before ray: see above)
