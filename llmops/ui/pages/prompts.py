"""Prompts: every prompt, its versions, per-version numbers, diffs, label moves and a playground."""

from __future__ import annotations

import time

import altair as alt
import pandas as pd
import streamlit as st

from llmops.errors import LLMOpsError
from llmops.experiments.service import ExperimentService
from llmops.governance.spend import parse_since
from llmops.registry.service import Registry
from llmops.ui import compare as cmp
from llmops.ui import matrix_view as mv
from llmops.ui import playground as pg
from llmops.ui import prompts_view as view
from llmops.ui import version_stats as vs
from llmops.ui.textdiff import side_by_side_html
from llmops.ui.timebuckets import PERIODS, bucket_for
from llmops.ui.widgets import (
    confirmation,
    from_url,
    gateway,
    index_of,
    notify,
    page_errors,
    rate_outputs,
    request_confirmation,
    show_notices,
    to_url,
    ui_settings,
)

settings = ui_settings()
st.title("Prompts")
show_notices()


def show_version(version) -> None:
    left, right = st.columns([3, 2])
    with left:
        st.markdown(
            f"**{version.ref}** · {version.kind} template · {', '.join(version.labels) or 'no labels'}"
        )
        if version.kind == "chat":
            for message in version.messages or []:
                st.caption(message["role"])
                st.code(message["content"], language=None, wrap_lines=True)
        else:
            st.code(version.template or "", language=None, wrap_lines=True)
    with right:
        st.caption("Model config")
        st.json(version.model_config)
        st.caption("Variables (defaults; null means required)")
        st.json(version.variables)
        st.caption(f"“{version.message or 'no message'}” by {version.author or 'unknown'}")


def move_label(name: str, label: str, version: int) -> str:
    Registry(settings.database_url, cache_ttl=0).set_label(name, version, label, actor="llmops-ui")
    return f"{name}@{label} now points at version {version}."


def roll_back(name: str, label: str) -> str:
    now = Registry(settings.database_url, cache_ttl=0).rollback(name, label, actor="llmops-ui")
    return f"{name}@{label} rolled back to version {now.version}." if now else f"{name}@{label} rolled back."


VIEWS = ("Versions", "Numbers", "Diff", "Labels", "Playground")
MEASURES = {
    "Requests": ("requests", "requests"),
    "Cost": ("cost", "cost $"),
    "Mean latency (ms)": ("latency_ms", "latency ms"),
    "Mean feedback": ("feedback_mean", "feedback (0–1)"),
}


def show_numbers(name: str, numbers: list[int]) -> None:
    c1, c2 = st.columns(2)
    period = c1.selectbox("Period", list(PERIODS), index=2, key="prompt_numbers_period")
    since = parse_since(text) if (text := PERIODS[period]) else None
    rows = vs.version_numbers(settings.database_url, name, numbers, since=since)
    st.dataframe([r.row() for r in rows], hide_index=True, width="stretch")
    st.caption(
        "From the gateway's ledger (calls that named this prompt), feedback on those calls, and eval runs "
        "(comparisons saved only as comparisons do not count)."
    )
    measure = c2.selectbox("Chart", list(MEASURES), key="prompt_numbers_measure")
    # Buckets sized to the calls there are (an hour of traffic in minutes), not to the period.
    span = vs.prompt_span(settings.database_url, name, since) or since
    points = vs.version_series(settings.database_url, name, bucket=bucket_for(span), since=since)
    if not points:
        st.caption("No calls of this prompt in the period.")
        return
    field, title = MEASURES[measure]
    data = pd.DataFrame(
        [{"time": p.bucket, "version": p.version, "value": getattr(p, field)} for p in points]
    ).dropna(subset=["value"])
    chart = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("time:T", title=None),
            y=alt.Y("value:Q", title=title),
            color=alt.Color("version:N", title=None),
            tooltip=["time:T", "version:N", alt.Tooltip("value:Q", format=",.6g")],
        )
    )
    st.altair_chart(chart, width="stretch")


def show_playground(name: str, numbers: list[int], by_number, labels: dict[str, int]) -> None:
    start = labels.get("production", numbers[0])
    base_number = st.selectbox(
        "Start from version", numbers, index=numbers.index(start), key=f"play_base:{name}"
    )
    base = by_number[base_number]
    left, right = st.columns([3, 2])
    template = left.text_area(
        "Template" if base.kind == "text" else "Messages (YAML: a list of role and content)",
        value=pg.template_text(base),
        height=240,
        key=f"play_template:{name}:{base_number}",
    )
    params = right.text_area(
        "Model and parameters (YAML)",
        value=pg.params_text(base),
        height=240,
        key=f"play_params:{name}:{base_number}",
        help="`model:` picks the model it runs on; the rest (temperature, max_tokens, …) are sent with each call",
    )
    try:
        draft = pg.parse_draft(base, template, params)
    except LLMOpsError as exc:
        st.error(exc.message)
        return
    spec = pg.draft_spec(draft)
    variables = cmp.prompt_variables([base, cmp.draft_view(spec)])
    st.caption(
        f"Run v{base_number} and the draft side by side (variables: {', '.join(variables) or 'none'})."
    )
    source = st.radio("Rows", ("Type the variables", "Rows of a dataset"), horizontal=True, key="play_source")
    cases = []
    if source == "Type the variables":
        values = {
            var: st.text_area(
                var, key=f"play_var_{var}", height=100, placeholder=f"the value of {{{{ {var} }}}}"
            )
            for var in variables
        }
        filled = {k: v for k, v in values.items() if v.strip()}
        if filled or not variables:
            cases = [cmp.manual_case(filled)]
    else:
        datasets = cmp.list_datasets(settings.evals_dir)
        if not datasets:
            st.info(f"No datasets in `{settings.evals_dir}` (set LLMOPS_EVALS_DIR).")
        else:
            dataset = st.selectbox("Dataset", datasets, format_func=lambda d: d.label, key="play_dataset")
            rows = cmp.dataset_rows(dataset)
            ids = [r.id for r in rows]
            chosen = st.multiselect("Rows (a few)", ids, default=ids[:3], max_selections=10, key="play_rows")
            # Their variables only: a suite's checks are written for its own prompts, not a draft.
            cases = [cmp.manual_case(dict(r.vars), r.id) for r in rows if r.id in chosen]
    client = gateway(settings)
    served = client.model_names()
    model = st.selectbox("Model", served, index=index_of(served, draft.model), key=f"play_model:{name}")
    result_key = f"play_result:{name}"
    if st.button("Run beside the current version", type="primary", key="play_run"):
        request = pg.draft_request(base, draft, cases, model)
        cmp.validate_request(request, [base, cmp.draft_view(spec)])
        job = cmp.ComparisonJob(client, request, settings.database_url)
        with st.spinner(f"Running {job.total} calls…"):
            while not job.future.done():
                time.sleep(0.1)
        st.session_state[result_key] = (base_number, spec, job.future.result())
    kept = st.session_state.get(result_key)
    if kept is not None and kept[0] == base_number:
        _, ran_spec, run = kept
        matrix = mv.build_matrix(
            run, database_url=settings.database_url, views={f"inline:{pg.DRAFT_ID}": cmp.draft_view(ran_spec)}
        )
        st.dataframe(matrix.summary_rows(), hide_index=True, width="stretch")
        st.html(mv.matrix_html(matrix, matrix.rows))
        rate_outputs(matrix, settings.database_url, key=f"play_rate:{run.id}")

    st.subheader("Save the draft")
    s1, s2 = st.columns([4, 1], vertical_alignment="bottom")
    message = s1.text_input(
        "What changed", key=f"play_message:{name}", placeholder="e.g. ask for one-line summaries"
    )
    if s2.button("Save as new version", key="play_save"):
        saved = pg.save_draft(settings.database_url, base, draft, message)
        st.session_state.pop(result_key, None)
        notify(
            f"Saved {saved.ref}: a new version; v{base_number} is unchanged. Move a label to it to ship it."
        )
        st.rerun()


with page_errors(settings):
    registry = Registry(settings.database_url, cache_ttl=0)
    summaries = registry.list_prompts()
    if not summaries:
        st.info("No prompts yet. Write prompt files under `prompts/` and run `llmops prompts sync prompts/`.")
        st.stop()
    st.dataframe(view.prompts_table(summaries), hide_index=True, width="stretch")

    names = [s.name for s in summaries]
    name = st.selectbox("Prompt", names, index=index_of(names, from_url("prompt", names)), key="prompt_name")
    history = registry.history(name)
    labels = view.current_labels(history)
    numbers = [v.version for v in reversed(history.versions)]
    by_number = {v.version: v for v in history.versions}

    # A keyed choice, not st.tabs: a rerun (a confirmed label move) stays on the view in use.
    shown_view = st.radio(
        "View",
        VIEWS,
        index=VIEWS.index(from_url("view", VIEWS, VIEWS[0])),
        horizontal=True,
        key="prompt_view",
        label_visibility="collapsed",
    )
    to_url(prompt=name, view=shown_view)

    if shown_view == "Versions":
        st.dataframe(view.versions_table(history), hide_index=True, width="stretch")
        shown = labels.get("production", numbers[0])
        picked = st.selectbox(
            "Version",
            numbers,
            index=numbers.index(shown),
            format_func=lambda n: (
                f"v{n} " + (f"({', '.join(by_number[n].labels)})" if by_number[n].labels else "")
            ),
            key=f"prompt_version:{name}",
        )
        show_version(by_number[picked])

    elif shown_view == "Numbers":
        show_numbers(name, numbers)

    elif shown_view == "Diff":
        if len(numbers) < 2:
            st.info("This prompt has one version: nothing to diff yet.")
        else:
            old_default = labels.get("production", numbers[1])
            new_default = labels.get("staging", numbers[0])
            if new_default == old_default:
                old_default, new_default = numbers[1], numbers[0]
            a, b = st.columns(2)
            old = a.selectbox(
                "From version", numbers, index=numbers.index(old_default), key=f"diff_old:{name}"
            )
            new = b.selectbox("To version", numbers, index=numbers.index(new_default), key=f"diff_new:{name}")
            changes = view.diff_versions(registry, name, old, new)
            if changes.diff.unchanged:
                st.info(f"v{old} and v{new} have the same template, variables and model config.")
            if changes.diff.kind_changed:
                st.warning(
                    f"The template kind changed: v{old} is {by_number[old].kind}, v{new} is {by_number[new].kind}."
                )
            st.html(side_by_side_html(changes.lines, f"{name}:{old}", f"{name}:{new}"))
            for title, part in (
                ("Model config changes", changes.diff.model_config_changes),
                ("Variable changes", changes.diff.variables_changes),
            ):
                rows = view.config_changes_rows(part)
                if rows:
                    st.caption(title)
                    st.dataframe(rows, hide_index=True, width="stretch")

    elif shown_view == "Labels":
        if labels:
            st.dataframe(
                [{"Label": label, "Version": f"v{version}"} for label, version in labels.items()],
                hide_index=True,
            )
        else:
            st.caption("No labels yet.")
        st.subheader("Move a label")
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        label = c1.selectbox(
            "Label", view.label_choices(history), key=f"move_label:{name}", accept_new_options=True
        )
        target = c2.selectbox(
            "To version",
            numbers,
            format_func=lambda n: (
                f"v{n}" + (f" ({', '.join(by_number[n].labels)})" if by_number[n].labels else "")
            ),
            key=f"move_version:{name}",
        )
        if c3.button("Move label", key="move_button"):
            try:
                experiments = ExperimentService(settings.database_url).list()
                request_confirmation(
                    "move",
                    view.move_question(history, label, target, experiments),
                    name=name,
                    label=label,
                    version=target,
                )
            except LLMOpsError as exc:
                st.warning(exc.message)
        confirmation("move", move_label)

        st.subheader("Roll back")
        if labels:
            r1, r2 = st.columns([4, 1], vertical_alignment="bottom")
            back = r1.selectbox("Label to roll back", list(labels), key=f"rollback_label:{name}")
            if r2.button("Roll back", key="rollback_button"):
                try:
                    question, _ = view.rollback_question(history, back)
                    request_confirmation("rollback", question, name=name, label=back)
                except LLMOpsError as exc:
                    st.warning(exc.message)
            confirmation("rollback", roll_back)
        else:
            st.caption("No labels to roll back.")

        st.subheader("Label history")
        events = view.label_events_table(history)
        if events:
            st.dataframe(events, hide_index=True, width="stretch")
        else:
            st.caption("No label has moved yet.")

    else:
        show_playground(name, numbers, by_number, labels)
