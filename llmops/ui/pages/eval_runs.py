"""Eval runs: the cases × prompt/model matrix, filters, a baseline comparison, CSV export."""

from __future__ import annotations

import streamlit as st

from llmops.ui import eval_runs as er
from llmops.ui.widgets import page_errors, show_notices, ui_settings

settings = ui_settings()
st.title("Eval runs")
show_notices()


def matrix_style(value: object) -> str:
    text = str(value)
    if text.startswith("pass"):
        return "background-color:#dcfce7"
    if text.startswith("FAIL"):
        return "background-color:#fee2e2"
    if text.startswith("error"):
        return "background-color:#fef3c7"
    if text == er.NO_CHECKS:
        return "color:#6b7280"
    return ""


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
                    "run": r.id,
                    "suite": r.suite,
                    "kind": r.origin,
                    "status": r.status,
                    "passed": f"{r.passed}/{r.total}",
                    "score": round(r.score, 3),
                    "cost $": round(r.cost, 6),
                    "prompts": r.prompts,
                    "models": r.models,
                    "started": r.started_at,
                }
                for r in runs
            ],
            hide_index=True,
            width="stretch",
        )
    wanted = st.session_state.get("eval_run_id")
    run_id = st.selectbox(
        "Run",
        ids,
        index=ids.index(wanted) if wanted in ids else 0,
        format_func=lambda i: by_id[i].label,
        key="eval_run",
    )
    run = er.load_run(run_id, settings.database_url)

    m = st.columns(5)
    m[0].metric("Status", run.status)
    m[1].metric("Passed", f"{run.passed_count}/{run.total}")
    m[2].metric("Mean score", f"{run.score:.3f}")
    m[3].metric("Cost", f"${run.cost:.6f}")
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

    matrix = er.result_matrix(run)
    f1, f2, f3 = st.columns([1, 1, 2], vertical_alignment="bottom")
    failures = f1.toggle("Failures only", key="eval_failures")
    differences = f2.toggle("Differences only", key="eval_differences")
    f3.download_button(
        "Download CSV",
        er.results_csv(run),
        file_name=f"eval-run-{run.id}.csv",
        mime="text/csv",
        key="eval_csv",
    )
    shown = matrix.filtered(failures_only=failures, differences_only=differences)
    st.caption(f"{len(shown)} of {len(matrix.rows)} cases shown")
    if shown:
        import pandas as pd

        table = pd.DataFrame(matrix.table(shown)).set_index("case")
        st.dataframe(
            table.style.map(matrix_style),
            width="stretch",
            column_config={"_index": st.column_config.TextColumn("case", width="medium")},
        )
        case_id = st.selectbox("Case", shown, key=f"eval_case:{run.id}")
        for column in matrix.columns:
            result = matrix.get(case_id, column)
            if result is None:
                continue
            with st.expander(f"{column}: {er.cell_text(result)}", expanded=not result.passed):
                if result.error:
                    st.error(result.error)
                st.caption(result.reason)
                st.text(result.output or "")
                if result.assertions:
                    st.dataframe(
                        [
                            {"check": a.name, "passed": a.passed, "score": round(a.score, 3), "why": a.reason}
                            for a in result.assertions
                        ],
                        hide_index=True,
                        width="stretch",
                    )
    else:
        st.success("No case matches the filters.")

    st.subheader("Compare with a baseline")
    others = [i for i in ids if i != run.id]
    if not others:
        st.caption("No other run to compare with yet.")
    else:
        options = [er.NO_BASELINE, *others]
        default = run.baseline_run_id if run.baseline_run_id in others else er.NO_BASELINE
        baseline_id = st.selectbox(
            "Baseline run",
            options,
            index=options.index(default),
            format_func=lambda i: i if i == er.NO_BASELINE else by_id[i].label,
            # Per run, so each run opens on its own baseline rather than the last one picked.
            key=f"eval_baseline:{run.id}",
        )
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
