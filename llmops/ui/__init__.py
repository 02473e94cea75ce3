"""The Streamlit app (`streamlit run app.py`): pages in `pages/`, their data helpers here.

The helpers are plain functions over the library and never import streamlit, so they
are tested without a browser; the pages only lay out what the helpers return.
"""
