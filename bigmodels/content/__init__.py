"""Content of the case-study and challenge pages: curated data files (YAML)
with loaders, validators and pure view logic (filters, tables; their charts are in figures/).
Nothing in this package imports Streamlit."""
