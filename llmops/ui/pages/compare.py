"""Compare: 2–4 prompt versions × 1–3 models on typed or dataset rows; a grid of graded outputs."""

from __future__ import annotations

import time

import streamlit as st

from llmops.registry.service import Registry
from llmops.ui import compare as cmp
from llmops.ui.widgets import gateway, notify, page_errors, show_notices, ui_settings

settings = ui_settings()
st.title("Compare")
show_notices()

RESULT = "compare_result"
SAVED = "compare_saved"
SOURCES = ("Type the variables", "Rows of a dataset", "Upload a CSV or JSONL file")


def pick_rows(rows, key: str):
    ids = [r.id for r in rows]
    chosen = st.multiselect("Rows", ids, default=ids[:2], key=key)
    picked = [r for r in rows if r.id in chosen]
    if picked:
        st.dataframe([{"id": r.id, **r.vars} for r in picked], hide_index=True, width="stretch")
    return picked


def show_grid(run) -> None:
    grid = cmp.comparison_grid(run)
    st.subheader("Results")
    st.caption(
        "Each column is a version on a model. Words a column adds to the row's first output are "
        "highlighted; words it drops are struck out."
    )
    st.dataframe(
        [
            {
                "version · model": column.label,
                "passed": grid.passed_text(column),
                "mean score": round(s.score, 3),
                "mean latency ms": None if s.latency_ms is None else round(s.latency_ms, 1),
                "tokens in": grid.tokens_for(column)[0],
                "tokens out": grid.tokens_for(column)[1],
                "cost $": round(s.cost, 8),
            }
            for column in grid.columns
            if (s := grid.summary_for(column)) is not None
        ],
        hide_index=True,
        width="stretch",
    )
    for row in grid.rows:
        with st.container(border=True):
            note = "outputs differ" if row.outputs_differ else "every column gave the same output"
            if row.verdicts_differ:
                note += "; verdicts differ"
            st.markdown(f"**{row.case_id}** · {note}")
            with st.expander("Variables"):
                st.json(row.variables)
            for i, (column, place) in enumerate(
                zip(grid.columns, st.columns(len(grid.columns)), strict=True)
            ):
                with place:
                    show_cell(column.label, row.cells[i], first=i == 0)


def show_cell(label: str, cell, *, first: bool) -> None:
    """One output: verdict and score, the text with differences marked, tokens, cost, latency, checks."""
    st.markdown(f"**{label}**")
    if cell is None:
        st.caption("not run")
        return
    result = cell.result
    if result.error is not None:
        st.error(result.error)
        return
    badge = {"pass": ":green-badge[pass]", "fail": ":red-badge[fail]"}.get(
        cmp.verdict_of(result), ":gray-badge[no checks]"
    )
    st.markdown(f"{badge} score **{result.score:.2f}**")
    st.markdown(f'<div class="llmops-output">{cell.html}</div>', unsafe_allow_html=True)
    if cell.same_as_reference and not first:
        st.caption("same as the first column")
    cost = "unknown cost" if result.cost is None else f"${result.cost:.6f}"
    latency = "" if result.latency_ms is None else f" · {result.latency_ms:.0f} ms"
    st.caption(f"{cell.input_tokens} → {cell.output_tokens} tokens · {cost}{latency}")
    if result.assertions:
        with st.expander("Checks"):
            st.dataframe(
                [
                    {"check": a.name, "passed": a.passed, "score": round(a.score, 3), "why": a.reason}
                    for a in result.assertions
                ],
                hide_index=True,
            )


with page_errors(settings):
    registry = Registry(settings.database_url, cache_ttl=0)
    summaries = registry.list_prompts()
    if not summaries:
        st.info("No prompts yet. Write prompt files under `prompts/` and run `llmops prompts sync prompts/`.")
        st.stop()
    name = st.selectbox("Prompt", [s.name for s in summaries], key="compare_prompt")
    history = registry.history(name)
    live = [v for v in reversed(history.versions) if not v.archived]
    refs = [v.ref for v in live]
    by_ref = {v.ref: v for v in live}
    labels = {label: f"{name}:{v.version}" for v in live for label in v.labels}
    defaults = [labels[x] for x in ("production", "staging") if x in labels]
    if len(set(defaults)) < 2:
        defaults = refs[:2]
    versions = st.multiselect(
        f"Versions ({cmp.MIN_VERSIONS}–{cmp.MAX_VERSIONS})",
        refs,
        default=list(dict.fromkeys(defaults)),
        max_selections=cmp.MAX_VERSIONS,
        format_func=lambda ref: ref + (f" ({', '.join(by_ref[ref].labels)})" if by_ref[ref].labels else ""),
        key=f"compare_versions:{name}",  # per prompt: another prompt's versions are other options
    )
    client = gateway(settings)
    served = client.model_names()
    wanted = [
        str(by_ref[r].model_config.get("model")) for r in versions if by_ref[r].model_config.get("model")
    ]
    default_models = [m for m in dict.fromkeys(wanted) if m in served][:1] or served[:1]
    models = st.multiselect(
        f"Models ({cmp.MIN_MODELS}–{cmp.MAX_MODELS})",
        served,
        default=default_models,
        max_selections=cmp.MAX_MODELS,
        key="compare_models",
    )
    views = [by_ref[r] for r in versions]
    variables = cmp.prompt_variables(views)

    source = st.radio("Rows to run", SOURCES, horizontal=True, key="compare_source")
    cases, suite_path, default_checks = [], None, ""
    if source == SOURCES[0]:
        values = {
            var: st.text_area(var, key=f"compare_var_{var}", placeholder=f"the value of {{{{ {var} }}}}")
            for var in variables
        }
        filled = {k: v for k, v in values.items() if v.strip()}
        if filled or not variables:
            cases = [cmp.manual_case(filled)]
        default_checks = cmp.default_checks(variables)
    elif source == SOURCES[1]:
        datasets = cmp.list_datasets(settings.evals_dir)
        if not datasets:
            st.info(
                f"No datasets in `{settings.evals_dir}` (set LLMOPS_EVALS_DIR), or upload a file instead."
            )
        else:
            dataset = st.selectbox("Dataset", datasets, format_func=lambda d: d.label, key="compare_dataset")
            cases = pick_rows(cmp.dataset_rows(dataset), "compare_rows")
            suite_path = str(dataset.path) if dataset.kind == "suite" else None
            if dataset.kind == "suite":
                st.caption("Rows of a suite bring their own checks; add more below for every row.")
    else:
        upload = st.file_uploader(
            "Rows (CSV or JSONL; columns are variables, plus id and expected)",
            type=["csv", "jsonl"],
            key="compare_upload",
        )
        if upload is not None:
            cases = pick_rows(cmp.uploaded_rows(upload.name, upload.getvalue()), "compare_upload_rows")

    checks_text = st.text_area(
        "Checks for every row (YAML, as an eval suite's `assert:` list)",
        value=default_checks,
        key=cmp.checks_key(source, name),
        height=120,
    )
    reuse = st.checkbox("Reuse cached responses for identical calls", value=False, key="compare_cache")

    if st.button("Run comparison", type="primary", key="compare_run"):
        request = cmp.ComparisonRequest(
            prompt_refs=versions,
            prompt_ids={ref: cmp.chosen_reference(by_ref[ref]) for ref in versions},
            models=models,
            cases=cases,
            checks=cmp.parse_checks(checks_text),
            suite_path=suite_path,
            name=f"compare {name}",
            use_cache=reuse,
        )
        cmp.validate_request(request, views)
        job = cmp.ComparisonJob(client, request, settings.database_url)
        bar = st.progress(0.0, text=f"Running {job.total} calls…")
        while not job.future.done():
            bar.progress(job.fraction, text=f"{job.done} of {job.total} calls done")
            time.sleep(0.1)
        st.session_state[RESULT] = (name, job.future.result())
        bar.empty()

    run = cmp.result_for(st.session_state, RESULT, name)
    if run is not None:
        show_grid(run)
        st.subheader("Save")
        if st.session_state.get(SAVED) == run.id:
            st.caption(f"This comparison is saved as {run.id}.")
        else:
            s1, s2, s3 = st.columns([4, 1, 1], vertical_alignment="bottom")
            title = s1.text_input("Name", value=run.suite, key="compare_save_name")
            keep = s2.button(
                "Save comparison",
                key="compare_save",
                help="Kept on the Eval runs page; not counted as eval evidence for these versions",
            )
            evidence = s3.button(
                "Save as eval run",
                key="compare_save_run",
                help="Counts as eval evidence for these versions, like a CLI eval run",
            )
            if keep or evidence:
                run_id = cmp.save_comparison(run, settings.database_url, title, as_eval_run=evidence)
                st.session_state[SAVED] = st.session_state["eval_run_id"] = run_id
                kind = "eval run" if evidence else "comparison"
                notify(f"Saved as {kind} {run_id}: open it on the Eval runs page.")
                st.rerun()
