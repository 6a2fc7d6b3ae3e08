"""The app's pages, run on every visit and rerun (`streamlit_app.py` serves this script)."""
import streamlit as st

from melanoma.app.sessions import free_ended_sessions

st.set_page_config(page_title="Melanoma triage: a teaching demo", page_icon=":material/dermatology:", layout="wide")
free_ended_sessions()
st.navigation([
    st.Page("classify.py", title="Classify", icon=":material/image_search:", default=True),
    st.Page("test_yourself.py", title="Test yourself", icon=":material/quiz:"),
    st.Page("dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("training.py", title="Training", icon=":material/monitoring:"),
    st.Page("about.py", title="About", icon=":material/info:"),
]).run()
