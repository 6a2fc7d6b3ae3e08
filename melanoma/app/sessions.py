"""Frees what Streamlit keeps of browser sessions that have ended.

A closed tab's session is kept for a reconnect for `server.disconnectedSessionTTL` (2 minutes).
When that runs out, Streamlit 1.67 drops the session without shutting it down, so its uploaded
files and the images it showed stay in the server's memory for good. Every script run therefore
frees those of sessions Streamlit no longer lists. This reaches into Streamlit's runtime; should a
later version rename what it uses, nothing is freed here and the app is otherwise unaffected.
"""
from __future__ import annotations


def free_ended_sessions() -> None:
    from streamlit.runtime import Runtime

    try:
        runtime = Runtime.instance()
        live = {info.session.id for info in runtime._session_mgr.list_sessions()}
        uploads, media = runtime.uploaded_file_mgr, runtime.media_file_mgr
        for session_id in set(getattr(uploads, "file_storage", {})) - live:
            uploads.remove_session_files(session_id)
        ended = set(media._files_by_session_and_coord) - live
        for session_id in ended:
            media.clear_session_refs(session_id)
        if ended:
            media.remove_orphaned_files()
    except (AttributeError, RuntimeError):  # another Streamlit version, or no runtime (AppTest)
        return
