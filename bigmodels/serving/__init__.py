"""The model service: trained models behind an HTTP API on Ray Serve (API keys,
dynamic batching, replicas), and what the app needs to run and watch it."""
