"""Benchmarks, run from the repository root as modules:

    python -m benchmarks.train_speed          # and launch_latency, sandbox_latency,
    python -m benchmarks.load_test --help     # load_test, comparison_page_load

Each writes its JSON under benchmarks/results/. The live-server, browser and
protocol-client tooling they share with the tests is in ``bigmodels.harness``.
"""
