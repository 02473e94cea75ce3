"""Prompts: every prompt, its versions and labels; a version's template and config; diffs; label moves."""

from __future__ import annotations

import streamlit as st

from llmops.errors import LLMOpsError
from llmops.registry.service import Registry
from llmops.ui import prompts_view as view
from llmops.ui.textdiff import side_by_side_html
from llmops.ui.widgets import confirmation, page_errors, request_confirmation, show_notices, ui_settings

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


with page_errors(settings):
    registry = Registry(settings.database_url, cache_ttl=0)
    summaries = registry.list_prompts()
    if not summaries:
        st.info("No prompts yet. Write prompt files under `prompts/` and run `llmops prompts sync prompts/`.")
        st.stop()
    st.dataframe(view.prompts_table(summaries), hide_index=True, width="stretch")

    name = st.selectbox("Prompt", [s.name for s in summaries], key="prompt_name")
    history = registry.history(name)
    labels = view.current_labels(history)
    numbers = [v.version for v in reversed(history.versions)]
    by_number = {v.version: v for v in history.versions}

    versions_tab, diff_tab, labels_tab = st.tabs(["Versions", "Diff", "Labels"])

    with versions_tab:
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

    with diff_tab:
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

    with labels_tab:
        st.dataframe(
            [{"label": label, "version": version} for label, version in labels.items()]
            or [{"label": "-", "version": None}],
            hide_index=True,
        )
        st.subheader("Move a label")
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        label = c1.selectbox(
            "Label", view.label_choices(history), key=f"move_label:{name}", accept_new_options=True
        )
        target = c2.selectbox("To version", numbers, key=f"move_version:{name}")
        if c3.button("Move label", key="move_button"):
            try:
                request_confirmation(
                    "move", view.move_question(history, label, target), name=name, label=label, version=target
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
