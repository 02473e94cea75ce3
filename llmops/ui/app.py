"""The app's frame: one navigation over the pages, and where the data comes from.

`streamlit run app.py` at the repository root runs `main()`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st
from PIL import Image, ImageDraw

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


@functools.cache
def favicon() -> Image.Image:
    """The tab's icon, drawn here: served by the app itself, so nothing is fetched from outside."""
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((2, 2, 61, 61), radius=14, fill=(79, 70, 229, 255))
    draw.line((22, 14, 22, 48), fill="white", width=8)
    draw.line((18, 48, 46, 48), fill="white", width=8)
    return image


def main() -> None:
    configure_offline_tokenizers()
    # Pages turn errors into messages; should anything escape them, show no traceback
    # either. The toolbar keeps only what a reader of the app needs (no Deploy button).
    st.set_option("client.showErrorDetails", "none")
    st.set_option("client.toolbarMode", "viewer")
    st.set_page_config(page_title="llmops", page_icon=favicon(), layout="wide")
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
