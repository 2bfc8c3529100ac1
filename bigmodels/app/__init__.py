"""The Streamlit layer: the only package code that imports streamlit."""
