"""Eval runs: the results matrix, display modes, feedback on outputs, a baseline comparison, exports."""

from __future__ import annotations

import streamlit as st

from llmops.ui import eval_runs as er
from llmops.ui import matrix_view as mv
from llmops.ui.widgets import from_url, page_errors, rate_outputs, show_notices, to_url, ui_settings

settings = ui_settings()
st.title("Eval runs")
show_notices()


with page_errors(settings):
    runs = er.recent_runs(settings.database_url)
    if not runs:
        st.info(
            "No eval runs yet. Run `llmops eval run evals/summarize.yaml`, or save a comparison from the Compare page."
        )
        st.stop()
    ids = [r.id for r in runs]
    by_id = {r.id: r for r in runs}
    with st.expander(f"All runs ({len(runs)})"):
        st.dataframe(
            [
                {
                    "Run": r.id,
                    "Suite": r.suite,
                    "Kind": r.origin,
                    "Status": r.status,
                    "Passed": f"{r.passed}/{r.total}",
                    "Score": f"{r.score:.3f}",
                    "Cost": f"${r.cost:.6f}",
                    "Prompts": r.prompts,
                    "Models": r.models,
                    "Started": r.started_at,
                }
                for r in runs
            ],
            hide_index=True,
            width="stretch",
        )
    # The run just saved on Compare, else the one the link names, else the newest.
    wanted = st.session_state.pop("eval_run_id", None)
    if wanted is None and "eval_run" not in st.session_state:
        wanted = from_url("run", ids)
    if wanted in ids:
        st.session_state["eval_run"] = wanted
    run_id = st.selectbox(
        "Run",
        ids,
        format_func=lambda i: by_id[i].label,
        key="eval_run",
    )
    run = er.load_run(run_id, settings.database_url)

    m = st.columns(5)
    m[0].metric("Status", run.status)
    m[1].metric("Passed", f"{run.passed_count}/{run.total}")
    m[2].metric("Mean score", f"{run.score:.3f}")
    m[3].metric(
        "Cost", f"${run.cost:.4f}" if run.cost >= 0.01 else f"${run.cost:.6f}".rstrip("0").rstrip(".")
    )
    m[4].metric("Mean latency", "-" if run.latency_ms is None else f"{run.latency_ms:.0f} ms")
    st.caption(
        "Prompts: "
        + ", ".join(f"{k} → {v}" if k != v else v for k, v in run.prompts.items())
        + f" · models: {', '.join(run.models)} · git {(run.git_commit or 'unknown')[:10]}"
    )

    if not er.is_evidence(run.parameters):
        st.info(
            "A comparison saved from Compare: not counted as eval evidence for these versions. "
            "Save it with “Save as eval run” on Compare to count it."
        )

    matrix = mv.build_matrix(run, database_url=settings.database_url)
    feedback = mv.run_feedback(matrix)
    if feedback["rated"]:
        mean = "" if feedback["mean"] is None else f", mean rating {feedback['mean']:.2f}"
        st.caption(
            f"Feedback: {feedback['rated']} output(s) rated (👍 {feedback['up']} 👎 {feedback['down']}{mean})."
        )
    st.dataframe(matrix.summary_rows(), hide_index=True, width="stretch")
    mode = st.radio(
        "Show",
        mv.MODES,
        index=mv.MODES.index(from_url("mode", mv.MODES, "all")),
        format_func=mv.MODE_LABELS.get,
        horizontal=True,
        key="eval_mode",
    )
    d1, d2, d3, _ = st.columns([1, 1, 1.3, 2])
    d1.download_button(
        "Download CSV",
        mv.results_csv(run, matrix),
        file_name=f"eval-run-{run.id}.csv",
        mime="text/csv",
        key="eval_csv",
        width="stretch",
    )
    d2.download_button(
        "Download JSON",
        mv.results_json(run, matrix),
        file_name=f"eval-run-{run.id}.json",
        mime="application/json",
        key="eval_json",
        width="stretch",
    )
    d3.download_button(
        "Download HTML report",
        mv.report_html(run, matrix),
        file_name=f"eval-run-{run.id}.html",
        mime="text/html",
        key="eval_html",
        width="stretch",
        help="The whole matrix with every output and its details, in one file that opens offline",
    )
    shown = matrix.shown(mode)
    st.caption(f"{len(shown)} of {len(matrix.rows)} cases shown")
    if shown:
        st.html(mv.matrix_html(matrix, shown))
    else:
        st.success("No case matches the filter.")
    rate_outputs(matrix, settings.database_url, key=f"eval_rate:{run.id}")

    st.subheader("Compare with a baseline")
    others = [i for i in ids if i != run.id]
    if not others:
        to_url(run=run.id, mode=mode)
        st.caption("No other run to compare with yet.")
    else:
        options = [er.NO_BASELINE, *others]
        default = run.baseline_run_id if run.baseline_run_id in others else er.NO_BASELINE
        default = from_url("baseline", options, default)
        baseline_id = st.selectbox(
            "Baseline run",
            options,
            index=options.index(default),
            format_func=lambda i: i if i == er.NO_BASELINE else by_id[i].label,
            # Per run, so each run opens on its own baseline rather than the last one picked.
            key=f"eval_baseline:{run.id}",
        )
        to_url(run=run.id, mode=mode, baseline=None if baseline_id == er.NO_BASELINE else baseline_id)
        if baseline_id != er.NO_BASELINE:
            comparison = er.compare_with_baseline(settings.database_url, baseline_id, run)
            verdict = er.baseline_verdict(comparison)
            {"regressed": st.error, "no regression": st.success}.get(verdict.kind, st.warning)(
                verdict.message
            )
            st.dataframe(er.baseline_table(comparison), hide_index=True, width="stretch")
            changes = er.changes_table(comparison)
            if changes:
                st.dataframe(changes, hide_index=True, width="stretch")
