"""The app's frame: one navigation over the pages, and where the data comes from.

`streamlit run app.py` at the repository root runs `main()`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from llmops.settings import configure_offline_tokenizers
from llmops.ui.widgets import ui_settings

PAGES_DIR = Path(__file__).parent / "pages"

# (file, title, icon, url path)
PAGES = (
    ("prompts.py", "Prompts", ":material/description:", "prompts"),
    ("compare.py", "Compare", ":material/compare:", "compare"),
    ("eval_runs.py", "Eval runs", ":material/fact_check:", "eval-runs"),
    ("experiments.py", "Experiments", ":material/science:", "experiments"),
    ("spend.py", "Spend", ":material/payments:", "spend"),
    ("gateway.py", "Gateway", ":material/router:", "gateway"),
    ("monitoring.py", "Monitoring", ":material/monitoring:", "monitoring"),
)


def main() -> None:
    configure_offline_tokenizers()
    # Pages turn errors into messages; should anything escape them, show no traceback
    # either. The toolbar keeps only what a reader of the app needs (no Deploy button).
    st.set_option("client.showErrorDetails", "none")
    st.set_option("client.toolbarMode", "viewer")
    st.set_page_config(page_title="llmops", page_icon=":material/hub:", layout="wide")
    pages = [
        st.Page(PAGES_DIR / file, title=title, icon=icon, url_path=url, default=i == 0)
        for i, (file, title, icon, url) in enumerate(PAGES)
    ]
    page = st.navigation(pages)
    settings = ui_settings()
    with st.sidebar:
        st.caption(f"Database: `{settings.database_label}`")
        st.caption(f"Models through the {settings.gateway_label}")
    page.run()
