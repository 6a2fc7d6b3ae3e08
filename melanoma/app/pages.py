"""The app's pages, run on every visit and rerun (`streamlit_app.py` serves this script)."""
import contextlib

import streamlit as st

from melanoma.app import state
from melanoma.app.sessions import free_ended_sessions
from melanoma.bundle import BundleError

# On a phone the sidebar lies over the page, and Streamlit leaves it open after a page is chosen
# from it: the visitor would see the menu, not the page. Run only when the page has just changed
# (so nothing else closes it), and only below Streamlit's phone width, where it overlays the page.
CLOSE_SIDEBAR_ON_A_PHONE = """<script>
(() => {
  const change = {change};  // numbered, so that Streamlit runs it afresh on each page change
  if (!window.matchMedia("(max-width: 767px)").matches) return;
  const close = () => {
    const sidebar = document.querySelector('[data-testid="stSidebar"]');
    const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button')
      || document.querySelector('[data-testid="stSidebarCollapseButton"]');
    if (sidebar && button && sidebar.getBoundingClientRect().right > 0) button.click();
  };
  close();
  setTimeout(close, 400);
})();
</script>"""

st.set_page_config(page_title="Melanoma triage: a teaching demo", page_icon=":material/dermatology:", layout="wide")
free_ended_sessions()
page = st.navigation([
    st.Page("classify.py", title="Classify", icon=":material/image_search:", default=True),
    # The reader study keeps the address it had before its module was renamed.
    st.Page("reader_quiz.py", title="Test yourself", icon=":material/quiz:", url_path="test_yourself"),
    st.Page("your_photos.py", title="Check it on your photos", icon=":material/fact_check:",
            url_path="check_your_photos"),
    st.Page("dataset.py", title="Dataset", icon=":material/dataset:"),
    st.Page("training.py", title="Training", icon=":material/monitoring:"),
    st.Page("about.py", title="About", icon=":material/info:"),
])
if st.session_state.get("shown_page", page.url_path) != page.url_path:
    # Numbered: Streamlit does not redraw an element that has not changed, so would not run it again.
    st.session_state["page_changes"] = st.session_state.get("page_changes", 0) + 1
    st.html(CLOSE_SIDEBAR_ON_A_PHONE.replace("{change}", str(st.session_state["page_changes"])),
            unsafe_allow_javascript=True)
st.session_state["shown_page"] = page.url_path
# Every page names the model it describes; a bundle that cannot be used is explained by each page.
with contextlib.suppress(BundleError):
    st.sidebar.caption(f"Model {state.current_bundle().version}")
try:
    page.run()
finally:  # also when the page ends with st.stop(): the network loads once the first page is drawn
    state.start_loading()
