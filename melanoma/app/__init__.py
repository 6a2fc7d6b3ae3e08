"""The Streamlit app: one module per page (listed in `pages.py`, served by `streamlit_app.py` at the
repository root), the model objects every session shares (`state`) and the shared plotly figures (`charts`)."""
