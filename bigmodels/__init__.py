"""bigmodels: three architectures on MNIST, measured, trained and explained.

The package works without Streamlit; the app in ``app.py`` and ``pages/`` is a
thin view over it. Entry points: ``bigmodels.registry.create_model``,
``bigmodels.data.load_mnist``, ``bigmodels.training.train``,
``bigmodels.evaluation.evaluate`` and the CLI ``python -m bigmodels``.
"""
__version__ = "0.1.0"
