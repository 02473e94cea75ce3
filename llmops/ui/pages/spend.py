"""Spend: cost and tokens over time by model, key, user, team and prompt; budgets and what is left."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from llmops.governance.spend import parse_since, spend_report
from llmops.ui import spend_view as sv
from llmops.ui.timebuckets import BUCKETS, PERIODS, bucket_for
from llmops.ui.widgets import from_url, page_errors, show_notices, to_url, ui_settings

settings = ui_settings()
st.title("Spend")
show_notices()

SPANS = PERIODS
TABS = (
    ("By model", "model"),
    ("By key", "key"),
    ("By user", "user"),
    ("By team", "team"),
    ("By prompt", "prompt"),
)


def stacked(points: list[sv.SpendPoint], field: str, title: str) -> alt.Chart:
    data = pd.DataFrame([{"time": p.bucket, "group": p.group, "value": getattr(p, field)} for p in points])
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("time:T", title=None),
            y=alt.Y("sum(value):Q", title=title, stack=True),
            color=alt.Color("group:N", title=None),
            tooltip=["time:T", "group:N", alt.Tooltip("sum(value):Q", title=title, format=",.6g")],
        )
        .properties(height=260)
    )


with page_errors(settings):
    c1, c2 = st.columns(2)
    spans = list(SPANS)
    span_name = c1.selectbox(
        "Period", spans, index=spans.index(from_url("period", spans, spans[2])), key="spend_span"
    )
    to_url(period=span_name)
    span_text = SPANS[span_name]
    since = parse_since(span_text) if span_text else None
    bucket_names = list(BUCKETS)
    # Buckets sized to the data in the period (a new gateway's hour of traffic in minutes);
    # keyed by period, so the bucket follows the period until the user picks another.
    span = sv.ledger_span(settings.database_url, since) or since
    bucket = c2.selectbox(
        "Bucket",
        bucket_names,
        index=bucket_names.index(bucket_for(span)),
        key=f"spend_bucket:{SPANS[span_name] or 'all'}",
    )

    totals = spend_report(settings.database_url, by="model", since=since)
    requests = sum(r["requests"] for r in totals)
    if not requests:
        st.info(
            "No requests in this period. Spend is read from the gateway's ledger: calls through the "
            "gateway (or the Compare page) appear here."
        )
        st.stop()
    m = st.columns(4)
    m[0].metric("Cost", f"${sum(r['cost'] or 0.0 for r in totals):,.6f}")
    m[1].metric("Requests", f"{requests:,}")
    m[2].metric("Input tokens", f"{sum(r['input_tokens'] for r in totals):,}")
    m[3].metric("Output tokens", f"{sum(r['output_tokens'] for r in totals):,}")
    unpriced = sum(r["unknown_cost_requests"] for r in totals)
    if unpriced:
        st.warning(
            f"{unpriced} request(s) used tokens at an unknown price: their cost is missing from these figures."
        )

    tabs = st.tabs([t for t, _ in TABS] + ["Budgets"])
    for tab, (_, by) in zip(tabs, TABS, strict=False):
        with tab:
            points = sv.spend_over_time(settings.database_url, by=by, since=since, bucket=bucket)
            left, right = st.columns(2)
            left.altair_chart(stacked(points, "cost", "cost $"), width="stretch")
            right.altair_chart(stacked(points, "tokens", "tokens"), width="stretch")
            table = spend_report(settings.database_url, by=by, since=since)
            st.dataframe(sv.spend_table(table, by), hide_index=True, width="stretch")
    with tabs[-1]:
        budgets = sv.budgets_left(settings.database_url)
        if not budgets:
            st.caption(
                "No budgets. Give a key one (`llmops keys create --name web --budget 20 --period month`), or a user or a "
                "team (`llmops keys budget --team news --budget 100`)."
            )
        else:
            spent_out = [b for b in budgets if b.left <= 0]
            if spent_out:
                st.error(
                    "Spent out, so calls are refused until the period resets: "
                    + ", ".join(f"{b.scope} {b.subject}" for b in spent_out)
                )
            st.dataframe([b.row() for b in budgets], hide_index=True, width="stretch")
            st.caption(
                "This period's spend, from the gateway's budget counters (a running gateway's last few seconds may be missing)."
            )
