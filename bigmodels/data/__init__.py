"""Data in: MNIST files, the sandbox's drawn digits, uploads."""
