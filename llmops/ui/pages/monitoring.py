"""Monitoring: drift alarms of the recent window, online eval scores over time per prompt
version, and the captured calls behind a point."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from llmops.governance.spend import parse_since
from llmops.monitoring.config import DriftConfig
from llmops.monitoring.drift import alarm_message, build_report
from llmops.monitoring.history import calls_behind, drift_series, score_series
from llmops.ui.widgets import page_errors, readable, show_notices, ui_settings

settings = ui_settings()
st.title("Monitoring")
show_notices()

WINDOWS = {"Last hour": "1h", "Last 6 hours": "6h", "Last 24 hours": "24h", "Last 7 days": "7d"}
PERIODS = {"Last 24 hours": ("24h", "1h"), "Last 7 days": ("7d", "6h"), "Last 30 days": ("30d", "1d")}


def _value(v: object) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {share:.0%}" for k, share in list(v.items())[:3])
    return "" if v is None else f"{v:.4g}"


with page_errors(settings):
    st.subheader("Drift and degradation")
    c1, c2, c3 = st.columns(3)
    window = c1.selectbox("Recent window", list(WINDOWS), index=2, key="monitor_window")
    reference = c2.selectbox(
        "Reference",
        ["previous", "first_week"],
        key="monitor_reference",
        help="previous: the 7 days before the window; first_week: each version's first week",
    )
    min_calls = c3.number_input(
        "Fewest calls to alarm on", min_value=5, value=50, step=5, key="monitor_min_calls"
    )
    config = DriftConfig.model_validate(
        {"reference": reference, "min_calls": int(min_calls), "topic": "lexical"}
    )
    report = build_report(settings.database_url, config, since=parse_since(WINDOWS[window]))
    if not report.subjects:
        st.info(
            "No calls in either window. Drift is read from the gateway's ledger; language, topic and "
            "online evals need payload capture on (see the README's Monitoring section)."
        )
        st.stop()
    alarms = report.alarms()
    if alarms:
        for alarmed, check in alarms:
            st.error(alarm_message(alarmed, check))
    else:
        st.success("No drift alarm: every check is within its thresholds or has too few calls to judge.")
    rows = [
        {
            "subject": s.key,
            "check": c.metric,
            "status": c.status,
            "reference": _value(c.reference),
            "recent": _value(c.recent),
            "effect": c.effect,
            "p": c.p_value,
            "n reference": c.n_reference,
            "n recent": c.n_recent,
            "test": c.test,
            "note": c.note,
        }
        for s in report.subjects
        for c in s.checks
    ]
    st.dataframe(pd.DataFrame(readable(rows)), hide_index=True, width="stretch")

    st.subheader("Drift over time")
    p1, p2 = st.columns(2)
    period = p1.selectbox("Period", list(PERIODS), index=1, key="monitor_period")
    span, bucket = (parse_since(v) for v in PERIODS[period])
    history = drift_series(settings.database_url, since=span)
    if history:
        drift_checks = sorted({h.metric for h in history})
        drift_metric = p2.selectbox("Check", drift_checks, key="monitor_drift_metric")
        drift_data = pd.DataFrame(
            [
                {
                    "time": h.run_at,
                    "prompt version · model": h.subject,
                    "effect": h.effect,
                    "status": h.status,
                }
                for h in history
                if h.metric == drift_metric and h.effect is not None
            ]
        )
        st.altair_chart(
            alt.Chart(drift_data)
            .mark_line(point=True)
            .encode(
                x=alt.X("time:T", title=None),
                y=alt.Y("effect:Q", title=f"{drift_metric} effect size"),
                color=alt.Color("prompt version · model:N", title=None),
                tooltip=[
                    "time:T",
                    "prompt version · model:N",
                    alt.Tooltip("effect:Q", format=".3f"),
                    "status:N",
                ],
            )
            .properties(height=240),
            width="stretch",
        )
    else:
        st.caption(
            "No saved drift reports in this period: the gateway saves each run of its report "
            "(`monitoring.drift.enabled`), and `llmops monitor report --save` saves one."
        )

    st.subheader("Online eval scores over time")
    points = score_series(settings.database_url, since=span, bucket=bucket)
    if not points:
        st.info(
            "No online eval scores in this period: run `llmops monitor score`, or enable "
            "`monitoring.online_eval` in the gateway."
        )
        st.stop()
    metrics = sorted({p.metric for p in points})
    metric = st.selectbox(
        "Score",
        metrics,
        index=metrics.index("faithfulness") if "faithfulness" in metrics else 0,
        key="monitor_metric",
    )
    shown = [p for p in points if p.metric == metric]
    data = pd.DataFrame(
        [
            {"time": p.bucket, "prompt version · model": p.subject, "mean": p.mean, "calls": p.calls}
            for p in shown
        ]
    )
    chart = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("time:T", title=None),
            y=alt.Y("mean:Q", title=metric, scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("prompt version · model:N", title=None),
            tooltip=["time:T", "prompt version · model:N", alt.Tooltip("mean:Q", format=".3f"), "calls:Q"],
        )
        .properties(height=280)
    )
    st.altair_chart(chart, width="stretch")

    st.subheader("The calls behind a point")
    q1, q2 = st.columns(2)
    subjects = sorted({p.subject for p in shown})
    subject = q1.selectbox("Prompt version · model", subjects, key="monitor_subject")
    buckets = [p for p in shown if p.subject == subject]
    labels = {
        f"{p.bucket:%Y-%m-%d %H:%M} · mean {p.mean:.3f} · {p.calls} calls": p for p in reversed(buckets)
    }
    label = q2.selectbox("Point", list(labels), key=f"monitor_point:{subject}:{metric}:{period}")
    point = labels[label]
    calls = calls_behind(
        settings.database_url,
        subject=subject,
        metric=metric,
        start=point.bucket,
        end=point.bucket + bucket,
    )
    st.caption(f"{len(calls)} captured call(s), lowest {metric} first; the request id finds the ledger row.")
    st.dataframe(pd.DataFrame(calls), hide_index=True, width="stretch")
