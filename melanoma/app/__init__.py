"""The Streamlit app: one module per page (run by `streamlit_app.py` at the repository root), the
cached model objects (`state`) and the shared plotly figures (`charts`)."""
