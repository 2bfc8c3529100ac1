"""Pictures as data: plotly figures and numpy images, no Streamlit."""
