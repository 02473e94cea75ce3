"""Experiments: each variant's figures with confidence intervals, the verdict, charts over time."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from llmops.ui import experiments_view as ex
from llmops.ui import version_stats as vs
from llmops.ui.timebuckets import BUCKETS, bucket_for
from llmops.ui.widgets import from_url, index_of, page_errors, show_notices, to_url, ui_settings

settings = ui_settings()
st.title("Experiments")
show_notices()

METRICS = {
    "Requests": ("requests", "requests"),
    "Error rate": ("error_rate", "error rate"),
    "Mean latency (ms)": ("latency_ms", "latency ms"),
    "Mean feedback": ("feedback_mean", "feedback (0–1)"),
}


def feedback_chart(rows: list[dict]) -> alt.Chart | None:
    if not rows:
        return None
    base = alt.Chart(pd.DataFrame(rows)).encode(y=alt.Y("variant:N", title=None, sort=None))
    scale = alt.Scale(domain=[0, 1])
    bars = base.mark_rule(strokeWidth=3).encode(
        x=alt.X("low:Q", title="feedback: mean and 95% interval", scale=scale), x2="high:Q"
    )
    points = base.mark_point(filled=True, size=90).encode(
        x=alt.X("mean:Q", scale=scale),
        tooltip=[
            "variant:N",
            alt.Tooltip("mean:Q", format=".3f"),
            alt.Tooltip("low:Q", format=".3f"),
            alt.Tooltip("high:Q", format=".3f"),
            "rated:Q",
        ],
    )
    return (bars + points).properties(height=60 * len(rows) + 40)


with page_errors(settings):
    experiments = ex.list_experiments(settings.database_url)
    if not experiments:
        st.info(
            "No experiments yet. Start one with `llmops experiments create NAME --prompt PROMPT "
            "--variant control=production --variant candidate=staging`, or in the gateway's config."
        )
        st.stop()
    names = [e.name for e in experiments]
    by_name = {e.name: e for e in experiments}
    name = st.selectbox(
        "Experiment",
        names,
        index=index_of(names, from_url("experiment", names)),
        format_func=lambda n: f"{n} ({by_name[n].status}, prompt {by_name[n].prompt_name})",
        key="experiment",
    )
    to_url(experiment=name)
    report = ex.experiment_report(name, database_url=settings.database_url)
    info = report["experiment"]
    st.caption(
        f"Prompt **{info['prompt']}** · unit {info['unit']} · allocation {info['allocation']} · "
        f"status {info['status']} · control {report['control']}"
        + (f" · winner {info['winner']} (promoted v{info['promoted_version']})" if info.get("winner") else "")
    )

    st.subheader("Verdict")
    if not report["comparisons"]:
        st.caption("Only one variant: nothing to compare.")
    for comparison in report["comparisons"]:
        conclusion = comparison["conclusion"]
        if conclusion.startswith("significant"):
            st.success(comparison["verdict"])
        elif conclusion == "not enough data":
            st.warning(comparison["verdict"])
        else:
            st.info(comparison["verdict"])
    st.caption(
        f"Tests need {report['min_samples']} requests (errors) and {report['min_samples']} rated requests "
        f"(feedback) per variant; significance at α = {report['alpha']}."
    )

    st.subheader("Variants")
    rows = ex.variant_rows(report)
    st.dataframe(rows, hide_index=True, width="stretch")
    split = ex.split_check(report)
    st.markdown("**Split: configured and actual**")
    (st.error if split.mismatch else st.caption)(split.message)
    st.dataframe(split.rows(), hide_index=True, width="stretch")
    versions = sorted({int(x) for v in report["variants"] for x in v["versions"]})
    ratings = vs.app_ratings(settings.database_url, info["prompt"], versions)
    if ratings:
        st.caption(
            "Ratings given in the app to these versions' outputs (Compare, Eval runs; not experiment traffic): "
            + ", ".join(
                f"v{version} {count} rated" + ("" if mean is None else f", mean {mean:.2f}")
                for version, (count, mean) in sorted(ratings.items())
            )
        )
    intervals = ex.feedback_intervals(report)
    chart = feedback_chart(intervals)
    if chart is not None:
        st.altair_chart(chart, width="stretch", height=60 * len(intervals) + 40)

    st.subheader("Over time")
    c1, c2 = st.columns(2)
    buckets = list(BUCKETS)
    span = ex.traffic_span(settings.database_url, name)
    # Keyed by experiment, so the default bucket fits each one's span of traffic.
    bucket = c1.selectbox(
        "Bucket", buckets, index=buckets.index(bucket_for(span)), key=f"experiment_bucket:{name}"
    )
    metric = c2.selectbox("Measure", list(METRICS), key="experiment_metric")
    points = ex.experiment_over_time(settings.database_url, name, bucket=bucket)
    if not points:
        st.caption("No traffic recorded for this experiment yet.")
    else:
        field, title = METRICS[metric]
        data = pd.DataFrame(
            [{"time": p.bucket, "variant": p.variant, "value": getattr(p, field)} for p in points]
        ).dropna(subset=["value"])
        line = (
            alt.Chart(data)
            .mark_line(point=True)
            .encode(
                x=alt.X("time:T", title=None),
                y=alt.Y("value:Q", title=title),
                color=alt.Color("variant:N"),
                tooltip=["time:T", "variant:N", alt.Tooltip("value:Q", format=".3f")],
            )
        )
        st.altair_chart(line, width="stretch")
