"""The prompt registry's public face: `from llmops import Registry`.

    reg = Registry()                                   # Settings.database_url
    v = reg.create_version("summarize", messages=[...], model_config={"model": "demo"})
    reg.set_label("summarize", v.version, "production")
    prompt = reg.render("summarize@production", {"text": "..."})

References are `name`, `name@label` or `name:version`; `name` alone means production
if the prompt has that label, else latest (see llmops.registry.refs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import select

from llmops.errors import Conflict, InvalidInput, NotFound, TemplateError
from llmops.registry import store, templates
from llmops.registry.cache import TTLCache
from llmops.registry.content import build_content
from llmops.registry.diff import diff_versions
from llmops.registry.files import dump_prompt, prompt_files, read_prompt_file
from llmops.registry.models import Prompt, PromptLabel, PromptVersion
from llmops.registry.refs import ARCHIVED, PromptRef, parse_ref, parse_version, validate_label, validate_name
from llmops.registry.sync import sync_prompt
from llmops.registry.views import (
    History,
    PromptDiff,
    PromptSummary,
    PromptVersionView,
    RenderedPrompt,
    SyncReport,
)

# Writers are serialised, so a retry only covers a lost race on a brand-new database.
_WRITE_ATTEMPTS = 5


class Registry:
    def __init__(self, database_url: str | None = None, *, cache_ttl: float | None = None):
        from llmops.settings import get_settings

        settings = get_settings()
        self.database_url = database_url or settings.database_url
        self.cache_ttl = settings.prompt_cache_ttl if cache_ttl is None else cache_ttl
        self._cache: TTLCache[PromptVersionView | NotFound] = TTLCache(self.cache_ttl)

    @cached_property
    def engine(self) -> Engine:
        from llmops.db import get_engine

        return get_engine(self.database_url)

    # --- writing -------------------------------------------------------------------

    def _write(self, work):
        """Run `work(session)` in a serialised write transaction, retrying a lost race."""
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with store.write_session(self.engine) as session:
                    result = work(session)
                self._cache.clear()
                return result
            except IntegrityError:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise Conflict("another writer kept taking the same version number; try again") from None
            except OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise Conflict(
                        "the registry database stayed locked by another writer; try again"
                    ) from None
                raise
        raise AssertionError("unreachable")

    def create_version(
        self,
        name: str,
        *,
        template: str | None = None,
        messages: list[dict] | None = None,
        variables: dict[str, Any] | None = None,
        model_config: dict | None = None,
        message: str = "",
        author: str | None = None,
        labels: Sequence[str] = (),
        description: str | None = None,
    ) -> PromptVersionView:
        """Add the next version of `name` (creating the prompt if new) and move `labels` onto it."""
        validate_name(name)
        labels = [validate_label(label, settable=True) for label in labels]
        if ARCHIVED in labels:
            raise InvalidInput("a new version cannot be archived at birth")
        content = build_content(
            template=template, messages=messages, variables=variables, model_config=model_config
        )

        def work(session):
            prompt = store.lock_prompt(session, name, create=True, description=description or "")
            if description is not None and prompt.description != description:
                prompt.description = description
                session.add(prompt)
            row = store.insert_version(session, prompt, content, message=message or "", author=author)
            for label in labels:
                store.move_label(session, prompt, label, row.version, actor=author)
            return store.to_view(prompt, row, store.labels_of(session, prompt.id), row.version)

        return self._write(work)

    def set_label(self, name: str, version: int, label: str, *, actor: str | None = None) -> None:
        """Point `label` at `version`; the label `archived` archives the version instead."""
        version = parse_version(version)
        validate_label(label, settable=True)

        def work(session):
            prompt = store.lock_prompt(session, validate_name(name))
            if label == ARCHIVED:
                store.set_archived(session, prompt, version, True, actor=actor)
            else:
                store.move_label(session, prompt, label, version, actor=actor)

        self._write(work)

    def remove_label(
        self, name: str, label: str, *, version: int | None = None, actor: str | None = None
    ) -> None:
        """Delete a label (recorded); for `archived`, unarchive `version`."""
        validate_label(label, settable=True)

        def work(session):
            prompt = store.lock_prompt(session, validate_name(name))
            if label == ARCHIVED:
                if version is None:
                    raise InvalidInput("say which version to unarchive")
                store.set_archived(session, prompt, parse_version(version), False, actor=actor)
                return
            current = store.labels_of(session, prompt.id).get(label)
            if current is None:
                raise NotFound(f"prompt {name!r} has no label {label!r}")
            if version is not None and current != parse_version(version):
                raise Conflict(f"{name}@{label} points at version {current}, not {version}")
            store.remove_label(session, prompt, label, actor=actor)

        self._write(work)

    def rollback(self, name: str, label: str, *, actor: str | None = None) -> PromptVersionView | None:
        """Move `label` back to where it pointed before its last move; returns the version now labelled.

        Each rollback steps one move further back. `rollback(name, "archived")` unarchives
        the most recently archived version and returns None.
        """
        validate_label(label, settable=True)

        def work(session):
            prompt = store.lock_prompt(session, validate_name(name))
            return store.rollback(session, prompt, label, actor=actor)

        _, target = self._write(work)
        return None if target is None else self.get(f"{name}:{target}")

    def sync(self, directory: str | Path, *, actor: str | None = "sync") -> SyncReport:
        """Make the registry match the prompt files in `directory` (or one file)."""
        # Read and check every file before writing anything.
        specs = [read_prompt_file(path) for path in prompt_files(directory)]
        names = [spec.name for spec in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInput(f"more than one file defines prompt(s) {', '.join(duplicates)}")
        report = SyncReport()
        for spec in specs:
            report.prompts.append(self._write_spec(spec, actor))
        return report

    def _write_spec(self, spec, actor):
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                result = sync_prompt(self.engine, spec, actor=actor)
                self._cache.clear()
                return result
            except IntegrityError:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise Conflict(f"could not sync {spec.path}: concurrent writers; try again") from None

    # --- reading -------------------------------------------------------------------

    def get(self, ref: str | PromptRef) -> PromptVersionView:
        """Resolve a reference now; raises NotFound with what exists instead."""
        parsed = ref if isinstance(ref, PromptRef) else parse_ref(ref)
        with store.read_session(self.engine) as session:
            return store.resolve(session, parsed)

    def get_cached(self, ref: str) -> PromptVersionView:
        """Like get, served from memory for up to `cache_ttl` seconds (the gateway's hot path).

        Unknown references are cached too (as the NotFound they raised), so a client
        hammering a missing prompt does not hammer the database either.
        The view is shared between callers: treat its dicts and lists as read-only.
        """
        hit = self._cache.get(ref)
        if hit is None:
            try:
                hit = self.get(ref)
            except NotFound as exc:
                hit = exc
            self._cache.put(ref, hit)
        if isinstance(hit, NotFound):
            raise NotFound(hit.message)
        return hit

    def render(
        self, ref_or_view: str | PromptRef | PromptVersionView, variables: Mapping[str, Any]
    ) -> RenderedPrompt:
        """Render with Jinja2 in a sandbox; a missing variable error names every one missing.

        A reference is resolved fresh (get); hot paths pass `get_cached(ref)` instead.
        """
        view = ref_or_view if isinstance(ref_or_view, PromptVersionView) else self.get(ref_or_view)
        return render_view(view, variables)

    def list_prompts(self) -> list[PromptSummary]:
        with store.read_session(self.engine) as session:
            prompts = session.exec(select(Prompt).order_by(Prompt.name)).all()
            stats = {
                row[0]: row[1:]
                for row in session.exec(
                    select(
                        PromptVersion.prompt_id,
                        func.count(),
                        func.max(PromptVersion.created_at),
                    ).group_by(PromptVersion.prompt_id)
                ).all()
            }
            latest = dict(
                session.exec(
                    select(PromptVersion.prompt_id, func.max(PromptVersion.version))
                    .where(PromptVersion.archived == False)  # noqa: E712
                    .group_by(PromptVersion.prompt_id)
                ).all()
            )
            labels: dict[int, dict[str, int]] = {}
            label_times: dict[int, Any] = {}
            for row in session.exec(select(PromptLabel)).all():
                labels.setdefault(row.prompt_id, {})[row.label] = row.version
                seen = label_times.get(row.prompt_id)
                label_times[row.prompt_id] = row.updated_at if seen is None else max(seen, row.updated_at)
        summaries = []
        for prompt in prompts:
            count, last_created = stats.get(prompt.id, (0, None))
            times = [
                t for t in (prompt.created_at, last_created, label_times.get(prompt.id)) if t is not None
            ]
            summaries.append(
                PromptSummary(
                    name=prompt.name,
                    description=prompt.description,
                    latest_version=latest.get(prompt.id),
                    version_count=count,
                    labels=dict(sorted(labels.get(prompt.id, {}).items())),
                    updated_at=max(times),
                )
            )
        return summaries

    def history(self, name: str) -> History:
        with store.read_session(self.engine) as session:
            prompt = store.find_prompt(session, validate_name(name))
            labels = store.labels_of(session, prompt.id)
            latest = store.latest_version(session, prompt.id)
            versions = [
                store.to_view(prompt, row, labels, latest) for row in store.all_versions(session, prompt.id)
            ]
            events = [store.event_view(e) for e in store.label_events(session, prompt.id)]
        return History(name=prompt.name, description=prompt.description, versions=versions, events=events)

    def diff(self, name: str, v1: int, v2: int) -> PromptDiff:
        old = self.get(PromptRef(validate_name(name), version=parse_version(v1)))
        new = self.get(PromptRef(name, version=parse_version(v2)))
        return diff_versions(old, new)

    def export(self, directory: str | Path) -> list[Path]:
        """Write one `NAME.yaml` per prompt; `sync` of the result changes nothing."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for summary in self.list_prompts():
            history = self.history(summary.name)
            text = dump_prompt(history.name, history.description, history.versions, summary.labels)
            path = directory / f"{summary.name}.yaml"
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


def render_view(view: PromptVersionView, variables: Mapping[str, Any]) -> RenderedPrompt:
    if not isinstance(variables, Mapping):
        raise InvalidInput("variables must be a mapping of name to value")
    sources = [view.template or ""] if view.kind == "text" else [m["content"] for m in view.messages or []]
    missing = templates.missing_variables(sources, view.variables, variables)
    if missing:
        raise TemplateError(
            f"{view.ref} is missing variable{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
            param="variables",
        )
    values = {k: v for k, v in view.variables.items() if v is not None}
    values.update(variables)
    if view.kind == "text":
        text = templates.render_source(view.template or "", values, view.ref)
        messages = None
    else:
        text = None
        messages = []
        for i, message in enumerate(view.messages or [], 1):
            rendered = dict(message)
            rendered["content"] = templates.render_source(
                message["content"], values, f"{view.ref} message {i}"
            )
            messages.append(rendered)
    return RenderedPrompt(
        name=view.name,
        version=view.version,
        kind=view.kind,
        text=text,
        messages=messages,
        model_config=dict(view.model_config),
    )
