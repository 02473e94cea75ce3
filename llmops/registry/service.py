"""The prompt registry's public face: `from llmops import Registry`.

    reg = Registry()                                   # Settings.database_url
    v = reg.create_version("summarize", messages=[...], model_config={"model": "demo"})
    reg.set_label("summarize", v.version, "production")
    prompt = reg.render("summarize@production", {"text": "..."})

References are `name`, `name@label` or `name:version`; `name` alone means production
if the prompt has that label, else latest (see llmops.registry.refs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from llmops.errors import Conflict, InvalidInput, NotFound, TemplateError
from llmops.registry import store, templates
from llmops.registry.cache import TTLCache
from llmops.registry.content import build_content
from llmops.registry.diff import diff_versions
from llmops.registry.files import FileVersion, PromptFile, dump_prompt, prompt_files, read_prompt_file
from llmops.registry.models import Prompt, PromptLabel, PromptLabelEvent, PromptVersion
from llmops.registry.refs import ARCHIVED, PromptRef, parse_ref, parse_version, validate_label, validate_name
from llmops.registry.views import (
    History,
    KeptChange,
    PromptDiff,
    PromptSummary,
    PromptSyncResult,
    PromptVersionView,
    RenderedPrompt,
    SyncReport,
)

# Writers are serialised, so a retry only covers a lost race on a brand-new database.
_WRITE_ATTEMPTS = 5

_T = TypeVar("_T")


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

    def _write(self, work: Callable[[Session], _T]) -> _T:
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

        def work(session: Session) -> PromptVersionView:
            prompt = store.lock_prompt(session, name, create=True, description=description or "")
            if description is not None and prompt.description != description:
                prompt.description = description
                session.add(prompt)
            row = store.insert_version(session, prompt, content, message=message or "", author=author)
            for label in labels:
                store.move_label(session, prompt, label, row.version, actor=author)
            return store.to_view(prompt, row, store.labels_of(session, store.id_of(prompt)), row.version)

        return self._write(work)

    def derive_version(
        self,
        ref: str,
        *,
        template: str | None = None,
        messages: list[dict] | None = None,
        model_config: dict | None = None,
        message: str,
        author: str | None = None,
    ) -> PromptVersionView:
        """A new version of `ref`'s prompt from `ref` with the template (or messages) and model
        config given replacing its own: versions are never edited, a change is the next version."""
        base = self.get(ref)
        if not message.strip():
            raise InvalidInput("say what changed: a new version needs a message")
        if template is not None and messages is not None:
            raise InvalidInput("give a template or messages, not both")
        if template is None and messages is None:
            template, messages = base.template, base.messages
        return self.create_version(
            base.name,
            template=template,
            messages=messages,
            variables=dict(base.variables),
            model_config=dict(base.model_config if model_config is None else model_config),
            message=message.strip(),
            author=author,
        )

    def set_label(self, name: str, version: int, label: str, *, actor: str | None = None) -> None:
        """Point `label` at `version`; the label `archived` archives the version instead."""
        version = parse_version(version)
        validate_label(label, settable=True)

        def work(session: Session) -> None:
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

        def work(session: Session) -> None:
            prompt = store.lock_prompt(session, validate_name(name))
            if label == ARCHIVED:
                if version is None:
                    raise InvalidInput("say which version to unarchive")
                store.set_archived(session, prompt, parse_version(version), False, actor=actor)
                return
            current = store.labels_of(session, store.id_of(prompt)).get(label)
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

        def work(session: Session) -> tuple[int | None, int | None]:
            prompt = store.lock_prompt(session, validate_name(name))
            return store.rollback(session, prompt, label, actor=actor)

        _, target = self._write(work)
        return None if target is None else self.get(f"{name}:{target}")

    def sync(
        self, directory: str | Path, *, actor: str | None = "sync", apply_labels: bool = False
    ) -> SyncReport:
        """Make the registry match the prompt files in `directory` (or one file).

        New versions are created; a file version that the registry holds with other
        content raises SyncConflict before anything is written. Labels (and archived
        flags) follow the files unless someone moved them in the registry since a
        sync last set them: those are kept and reported, unless `apply_labels`.
        """
        specs = _read_specs(directory)
        self._check_versions(specs)
        report = SyncReport()
        for spec in specs:
            report.prompts.append(
                self._write(partial(_sync_file, spec=spec, actor=actor, apply_labels=apply_labels))
            )
        return report

    def _check_versions(self, specs: list[PromptFile]) -> None:
        """Every file's conflicts at once, so a conflict in one file leaves the others unwritten too."""
        conflicts: list[str] = []
        with store.read_session(self.engine) as session:
            for spec in specs:
                prompt = session.exec(select(Prompt).where(col(Prompt.name) == spec.name)).first()
                rows = store.all_versions(session, store.id_of(prompt)) if prompt else []
                conflicts += _plan_versions(spec, rows)[1]
        if conflicts:
            raise SyncConflict(conflicts)

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
            prompts = session.exec(select(Prompt).order_by(col(Prompt.name))).all()
            stats: dict[int, tuple[int, datetime | None]] = {
                row[0]: row[1:]
                for row in session.exec(
                    select(
                        PromptVersion.prompt_id,
                        func.count(),
                        func.max(PromptVersion.created_at),
                    ).group_by(col(PromptVersion.prompt_id))
                ).all()
            }
            latest = dict(
                session.exec(
                    select(PromptVersion.prompt_id, func.max(PromptVersion.version))
                    .where(col(PromptVersion.archived) == False)  # noqa: E712
                    .group_by(col(PromptVersion.prompt_id))
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
            prompt_id = store.id_of(prompt)
            count, last_created = stats.get(prompt_id, (0, None))
            times = [
                t for t in (prompt.created_at, last_created, label_times.get(prompt_id)) if t is not None
            ]
            summaries.append(
                PromptSummary(
                    name=prompt.name,
                    description=prompt.description,
                    latest_version=latest.get(prompt_id),
                    version_count=count,
                    labels=dict(sorted(labels.get(prompt_id, {}).items())),
                    updated_at=max(times),
                )
            )
        return summaries

    def history(self, name: str) -> History:
        with store.read_session(self.engine) as session:
            prompt = store.find_prompt(session, validate_name(name))
            prompt_id = store.id_of(prompt)
            labels = store.labels_of(session, prompt_id)
            latest = store.latest_version(session, prompt_id)
            versions = [
                store.to_view(prompt, row, labels, latest) for row in store.all_versions(session, prompt_id)
            ]
            events = [store.event_view(e) for e in store.label_events(session, prompt_id)]
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


# --- sync: prompt files into the registry -------------------------------------------
#
# A file's version numbers are the registry's: file v2 is summarize:2. Versions are
# immutable, so a file entry whose number the registry holds with other content is a
# conflict (an edited entry, or a number someone pushed first), never a new version.
# Labels and archived flags are shared with people (CLI, UI, promote): a sync changes
# one only while its last change was a sync's (or it never had one), so an operator's
# move survives restarts; sync's own changes are recorded with action "sync" to tell.


class SyncConflict(Conflict):
    """Files that contradict versions the registry holds; nothing was written."""

    def __init__(self, conflicts: list[str]):
        self.conflicts = conflicts
        count = f"{len(conflicts)} version conflict{'s' if len(conflicts) > 1 else ''}"
        super().__init__(f"{count}, nothing was synced: " + "; ".join(conflicts))


def _read_specs(directory: str | Path) -> list[PromptFile]:
    # Read and check every file before writing anything.
    specs = [read_prompt_file(path) for path in prompt_files(directory)]
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"more than one file defines prompt(s) {', '.join(duplicates)}")
    return specs


def _plan_versions(spec: PromptFile, rows: list[PromptVersion]) -> tuple[list[FileVersion], list[str]]:
    """The file versions to create, and the conflicts that forbid syncing this file."""
    by_number = {row.version: row for row in rows}
    next_number = max(by_number, default=0) + 1
    free = max(next_number, *(v.version + 1 for v in spec.versions))
    new: list[FileVersion] = []
    conflicts: list[str] = []
    for entry in sorted(spec.versions, key=lambda v: v.version):
        row = by_number.get(entry.version)
        if row is None and entry.version == next_number:
            new.append(entry)
            next_number += 1
        elif row is None:
            conflicts.append(
                f"{spec.name} v{entry.version} in {spec.path}: the registry's next version is "
                f"v{next_number}; number it {next_number} (version numbers leave no gaps)"
            )
        elif row.content_hash != entry.content.content_hash():
            conflicts.append(
                f"{spec.name} v{entry.version} in {spec.path} differs from the registry's "
                f"{spec.name}:{entry.version} in {_what_differs(row, entry)}; versions are immutable: "
                f"add the change as a new version (v{free})"
            )
    return new, conflicts


def _what_differs(row: PromptVersion, entry: FileVersion) -> str:
    content = entry.content
    parts = []
    if row.kind != content.kind:
        parts.append(f"kind ({row.kind} in the registry, {content.kind} in the file)")
    elif row.template != content.stored_template:
        # Same kind: a text template has no messages, a chat template always has some.
        if content.messages is None:
            parts.append("template")
        else:
            parts.append(_changed_messages(row.template, content.messages))
    for title, old, new in (
        ("variables", row.variables, content.variables),
        ("model_config", row.llm_config, content.model_config),
    ):
        keys = sorted(k for k in old.keys() | new.keys() if k not in old or k not in new or old[k] != new[k])
        if keys:
            parts.append(f"{title} ({', '.join(keys)})")
    return ", ".join(parts) or "content"


def _changed_messages(old: list[dict], new: list[dict]) -> str:
    if len(old) != len(new):
        return f"messages ({len(old)} in the registry, {len(new)} in the file)"
    changed = [f"{i} ({m['role']})" for i, (o, m) in enumerate(zip(old, new, strict=True), 1) if o != m]
    return "message " + ", ".join(changed)


def _sync_file(session: Session, spec: PromptFile, actor: str | None, apply_labels: bool) -> PromptSyncResult:
    """Apply one file in one transaction: it lands whole or not at all."""
    result = PromptSyncResult(name=spec.name, path=str(spec.path))
    prompt = store.lock_prompt(session, spec.name, create=True, description=spec.description)
    if prompt.description != spec.description:
        prompt.description = spec.description
        session.add(prompt)
        result.description_changed = True
    # Planned again under the lock: a push since the check may have taken a number.
    new, conflicts = _plan_versions(spec, store.all_versions(session, store.id_of(prompt)))
    if conflicts:
        raise SyncConflict(conflicts)
    for entry in new:
        row = store.insert_version(
            session, prompt, entry.content, message=entry.message, author=entry.author or actor
        )
        result.created.append((entry.version, row.version))
    shared = _SharedState(session, prompt, spec, result, actor, apply_labels)
    # Unarchive before labels move (a label may not point at an archived version),
    # archive after they have moved away.
    shared.sync_archived(False)
    shared.sync_labels()
    shared.sync_archived(True)
    return result


class _SharedState:
    """Labels and archived flags: the file's where a sync set them last, else the registry's."""

    def __init__(
        self,
        session: Session,
        prompt: Prompt,
        spec: PromptFile,
        result: PromptSyncResult,
        actor: str | None,
        apply_labels: bool,
    ):
        self.session, self.prompt, self.spec, self.result = session, prompt, spec, result
        self.actor, self.apply_labels = actor, apply_labels
        events = store.label_events(session, store.id_of(prompt))
        self.last_label = {e.label: e for e in events if e.label != ARCHIVED}
        # A label the files never named (a person's canary, an experiment's) is none of their business.
        self.file_labels = set(spec.labels) | {e.label for e in events if e.action == store.SYNC}
        self.last_flag = {
            e.to_version if e.to_version is not None else e.from_version: e
            for e in events
            if e.label == ARCHIVED
        }

    def sync_labels(self) -> None:
        current = store.labels_of(self.session, store.id_of(self.prompt))
        for label in sorted(self.file_labels - {ARCHIVED}):
            want, have = self.spec.labels.get(label), current.get(label)
            last = self.last_label.get(label)
            if have == want:
                self._agree(last, label, have, label)
            elif last is not None and self._held(last):
                self._keep(label, _shown_label(have), _shown_label(want), last)
            elif want is None:
                old = store.remove_label(
                    self.session, self.prompt, label, actor=self.actor, action=store.SYNC
                )
                self.result.moved[label] = (old, None)
            else:
                self._try(partial(self._move, label, want))

    def sync_archived(self, archived: bool) -> None:
        for entry in self.spec.versions:
            if entry.archived != archived:
                continue
            number = entry.version
            have = store.version_row(self.session, self.prompt, number).archived
            last = self.last_flag.get(number)
            if have == archived:
                self._agree(last, ARCHIVED, number, f"v{number}")
            elif last is not None and self._held(last):
                self._keep(f"v{number}", _shown_flag(have), _shown_flag(archived), last)
            else:
                self._try(partial(self._set_archived, number, archived))

    @staticmethod
    def _set_by_someone(last: PromptLabelEvent | None) -> bool:
        return last is not None and last.action != store.SYNC

    def _held(self, last: PromptLabelEvent | None) -> bool:
        return self._set_by_someone(last) and not self.apply_labels

    def _agree(self, last: PromptLabelEvent | None, label: str, version: int | None, subject: str) -> None:
        # Recorded so that the file's next change to it applies again.
        if self._set_by_someone(last):
            store.record_sync_agreement(self.session, self.prompt, label, version, actor=self.actor)
            self.result.adopted.append(subject)

    def _keep(self, subject: str, registry: str, file: str, last: PromptLabelEvent) -> None:
        self.result.kept.append(KeptChange(subject, registry, file, store.event_view(last)))

    def _move(self, label: str, version: int) -> None:
        moved = store.move_label(
            self.session, self.prompt, label, version, actor=self.actor, action=store.SYNC
        )
        if moved is not None:
            self.result.moved[label] = moved

    def _set_archived(self, version: int, archived: bool) -> None:
        store.set_archived(self.session, self.prompt, version, archived, actor=self.actor, action=store.SYNC)
        (self.result.archived if archived else self.result.unarchived).append(version)

    def _try(self, change: Callable[[], None]) -> None:
        # The store checks before it writes, so a refused change leaves nothing half done.
        try:
            change()
        except Conflict as exc:
            self.result.blocked.append(exc.message)


def _shown_label(version: int | None) -> str:
    return "unset" if version is None else str(version)


def _shown_flag(archived: bool) -> str:
    return "archived" if archived else "not archived"


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
