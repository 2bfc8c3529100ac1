"""bigmodels: three architectures on MNIST, measured, trained and explained.

The package works without Streamlit; the app in ``app.py`` and ``pages/`` is a
thin view over it. Entry points: ``bigmodels.models.registry.create_model``,
``bigmodels.data.mnist.load_mnist``, ``bigmodels.train.engine.train``,
``bigmodels.analysis.evaluation.evaluate`` and the CLI ``python -m bigmodels``.
"""
__version__ = "0.1.0"
