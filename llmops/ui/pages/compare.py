"""Compare: 2–4 prompt versions × 1–3 models on typed or dataset rows; the results matrix, rated in place."""

from __future__ import annotations

import time

import streamlit as st

from llmops.registry.service import Registry
from llmops.ui import compare as cmp
from llmops.ui import matrix_view as mv
from llmops.ui.widgets import (
    from_url,
    gateway,
    index_of,
    list_from_url,
    notify,
    page_errors,
    rate_outputs,
    show_notices,
    to_url,
    ui_settings,
)

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
        st.dataframe([{"Row": r.id, **r.vars} for r in picked], hide_index=True, width="stretch")
    return picked


def show_results(run) -> None:
    matrix = mv.build_matrix(run, database_url=settings.database_url)
    st.subheader("Results")
    st.dataframe(matrix.summary_rows(), hide_index=True, width="stretch")
    mode = st.radio(
        "Show",
        mv.MODES,
        index=mv.MODES.index(from_url("mode", mv.MODES, "all")),
        format_func=mv.MODE_LABELS.get,
        horizontal=True,
        key="compare_mode",
    )
    to_url(mode=mode)
    rows = matrix.shown(mode)
    st.caption(
        f"{len(rows)} of {len(matrix.rows)} rows. Each column is a version on a model; words a column adds to "
        "the row's first output are highlighted, words it drops struck out. Open a cell's Details for its "
        "rendered prompt, variables, expected output and every check's reason."
    )
    st.html(mv.matrix_html(matrix, rows))
    rate_outputs(matrix, settings.database_url, key=f"compare_rate:{run.id}")


with page_errors(settings):
    registry = Registry(settings.database_url, cache_ttl=0)
    summaries = registry.list_prompts()
    if not summaries:
        st.info("No prompts yet. Write prompt files under `prompts/` and run `llmops prompts sync prompts/`.")
        st.stop()
    names = [s.name for s in summaries]
    name = st.selectbox(
        "Prompt", names, index=index_of(names, from_url("prompt", names)), key="compare_prompt"
    )
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
        default=list_from_url("versions", refs, list(dict.fromkeys(defaults)))[: cmp.MAX_VERSIONS],
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
        default=list_from_url("models", served, default_models)[: cmp.MAX_MODELS],
        max_selections=cmp.MAX_MODELS,
        key="compare_models",
    )
    to_url(prompt=name, versions=versions, models=models)
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
        result = job.future.result()
        cmp.remember(name, result)
        st.session_state[RESULT] = (name, result)
        bar.empty()

    run = cmp.result_for(st.session_state, RESULT, name)
    if run is None and st.query_params.get("run"):
        # A reload or a shared link: the comparison the URL names, if this prompt's.
        run = cmp.recall(st.query_params["run"], name, settings.database_url)
        if run is not None:
            st.session_state[RESULT] = (name, run)
            if cmp.is_saved(run.id, settings.database_url):
                st.session_state[SAVED] = run.id
    to_url(run=None if run is None else run.id)
    if run is not None:
        show_results(run)
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
