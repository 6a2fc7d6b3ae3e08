"""Melanoma triage demo: `streamlit run streamlit_app.py`. Each page is a script in melanoma/app/.

MELANOMA_MODEL names the model bundle (default models/melanoma-resnet50); MELANOMA_DATA the
HAM10000 folder, used only for the sample images on the Dataset page.
"""
import os

import streamlit as st

from melanoma.app.sessions import free_ended_sessions

# TensorFlow's C++ start-up chatter (e.g. "failed call to cuInit" on a CPU) is not for users;
# Python errors are unaffected.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

st.set_page_config(page_title="Melanoma triage: a teaching demo", page_icon=":material/dermatology:", layout="wide")
free_ended_sessions()
st.navigation([
    st.Page("melanoma/app/classify.py", title="Classify", icon=":material/image_search:", default=True),
    st.Page("melanoma/app/test_yourself.py", title="Test yourself", icon=":material/quiz:"),
    st.Page("melanoma/app/dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("melanoma/app/training.py", title="Training", icon=":material/monitoring:"),
    st.Page("melanoma/app/about.py", title="About", icon=":material/info:"),
]).run()
