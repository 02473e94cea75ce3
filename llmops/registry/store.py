"""Database work for the registry: transactions that serialise writers, reads, label moves.

Writers to one prompt are serialised so version numbers are consecutive and label
history is linear: on Postgres the prompt row is locked (SELECT ... FOR UPDATE); on
SQLite the write transaction starts with BEGIN IMMEDIATE, which takes the database's
single write lock up front (db.py's busy_timeout makes the others wait for it). The
unique constraint on (prompt, version) backs both up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from llmops.columns import table_of
from llmops.errors import Conflict, NotFound
from llmops.registry.content import PromptContent
from llmops.registry.models import Prompt, PromptLabel, PromptLabelEvent, PromptVersion, utcnow
from llmops.registry.refs import ARCHIVED, LATEST, PRODUCTION, PromptRef
from llmops.registry.views import LabelEvent, PromptVersionView

# The action of every label change `prompts sync` makes (the actor stays whoever ran it):
# the next sync follows the files only for labels no one else has moved since.
SYNC = "sync"


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A transaction that commits on success; on SQLite it holds the write lock from the start."""
    if engine.dialect.name != "sqlite":
        with Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
        return
    # pysqlite would BEGIN (deferred) only at the first write, after we had read the
    # highest version: take the lock ourselves, as migrations.upgrade does.
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        session = Session(bind=conn, expire_on_commit=False)
        try:
            yield session
            session.flush()
            conn.exec_driver_sql("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (e.g. after an I/O error): keep the first error.
            with suppress(Exception):
                conn.exec_driver_sql("ROLLBACK")
            raise
        finally:
            session.close()
    finally:
        conn.close()


def _insert_ignoring_duplicate(session: Session, name: str, description: str) -> None:
    values = {"name": name, "description": description, "created_at": utcnow()}
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg_stmt = postgresql.insert(table_of(Prompt)).values(values)
        session.execute(pg_stmt.on_conflict_do_nothing(index_elements=["name"]))
    else:
        from sqlalchemy.dialects import sqlite

        lite_stmt = sqlite.insert(table_of(Prompt)).values(values)
        session.execute(lite_stmt.on_conflict_do_nothing(index_elements=["name"]))


def id_of(prompt: Prompt) -> int:
    """The id of a prompt row read from (or flushed to) the database, which always has one."""
    if prompt.id is None:
        raise ValueError(f"prompt {prompt.name!r} has no id: it was never flushed to the database")
    return prompt.id


def lock_prompt(session: Session, name: str, *, create: bool = False, description: str = "") -> Prompt:
    """The prompt row, locked for this transaction; created first when `create`."""
    if create:
        _insert_ignoring_duplicate(session, name, description)
    prompt = session.exec(select(Prompt).where(col(Prompt.name) == name).with_for_update()).first()
    if prompt is None:
        raise NotFound(f"prompt {name!r} not found")
    return prompt


def find_prompt(session: Session, name: str) -> Prompt:
    prompt = session.exec(select(Prompt).where(col(Prompt.name) == name)).first()
    if prompt is None:
        raise NotFound(f"prompt {name!r} not found; `llmops prompts list` shows the registry")
    return prompt


def highest_version(session: Session, prompt_id: int) -> int:
    return (
        session.exec(
            select(func.max(col(PromptVersion.version))).where(col(PromptVersion.prompt_id) == prompt_id)
        ).one()
        or 0
    )


def latest_version(session: Session, prompt_id: int) -> int | None:
    """The implied `latest`: the highest version not archived."""
    return session.exec(
        select(func.max(col(PromptVersion.version))).where(
            col(PromptVersion.prompt_id) == prompt_id,
            col(PromptVersion.archived) == False,  # noqa: E712
        )
    ).one()


def labels_of(session: Session, prompt_id: int) -> dict[str, int]:
    rows = session.exec(select(PromptLabel).where(col(PromptLabel.prompt_id) == prompt_id)).all()
    return {row.label: row.version for row in rows}


def version_row(session: Session, prompt: Prompt, version: int) -> PromptVersion:
    row = session.exec(
        select(PromptVersion).where(
            col(PromptVersion.prompt_id) == id_of(prompt), col(PromptVersion.version) == version
        )
    ).first()
    if row is None:
        top = highest_version(session, id_of(prompt))
        raise NotFound(f"prompt {prompt.name!r} has no version {version} (versions are 1..{top})")
    return row


def all_versions(session: Session, prompt_id: int) -> list[PromptVersion]:
    return list(
        session.exec(
            select(PromptVersion)
            .where(col(PromptVersion.prompt_id) == prompt_id)
            .order_by(col(PromptVersion.version))
        ).all()
    )


def to_view(
    prompt: Prompt, row: PromptVersion, labels: dict[str, int], latest: int | None
) -> PromptVersionView:
    pointing = sorted(label for label, version in labels.items() if version == row.version)
    if latest == row.version:
        pointing.append(LATEST)
    is_text = row.kind == "text"
    return PromptVersionView(
        name=prompt.name,
        version=row.version,
        kind=row.kind,
        template=row.template if is_text else None,
        messages=None if is_text else [dict(m) for m in row.template],
        variables=dict(row.variables),
        model_config=dict(row.llm_config),
        message=row.message,
        author=row.author,
        content_hash=row.content_hash,
        created_at=row.created_at,
        labels=pointing,
        archived=row.archived,
    )


def resolve(session: Session, ref: PromptRef) -> PromptVersionView:
    prompt = find_prompt(session, ref.name)
    labels = labels_of(session, id_of(prompt))
    latest = latest_version(session, id_of(prompt))
    if ref.version is not None:
        number = ref.version
    elif ref.label not in (None, LATEST):
        if ref.label not in labels:
            known = ", ".join(sorted(labels)) or "none"
            raise NotFound(
                f"prompt {ref.name!r} has no label {ref.label!r} (labels: {known}; 'latest' is implied)"
            )
        number = labels[ref.label]
    elif ref.label is None and PRODUCTION in labels:
        number = labels[PRODUCTION]
    elif latest is not None:
        number = latest
    else:
        raise NotFound(
            f"prompt {ref.name!r} has only archived versions; read one by number, {ref.name}:VERSION"
        )
    return to_view(prompt, version_row(session, prompt, number), labels, latest)


def insert_version(
    session: Session, prompt: Prompt, content: PromptContent, *, message: str, author: str | None
) -> PromptVersion:
    row = PromptVersion(
        prompt_id=id_of(prompt),
        version=highest_version(session, id_of(prompt)) + 1,
        kind=content.kind,
        template=content.stored_template,
        variables=content.variables,
        llm_config=content.model_config,
        message=message,
        author=author,
        content_hash=content.content_hash(),
    )
    session.add(row)
    session.flush()
    return row


def _record(
    session: Session,
    prompt: Prompt,
    label: str,
    action: str,
    old: int | None,
    new: int | None,
    actor: str | None,
) -> None:
    session.add(
        PromptLabelEvent(
            prompt_id=id_of(prompt), label=label, action=action, from_version=old, to_version=new, actor=actor
        )
    )


def move_label(
    session: Session, prompt: Prompt, label: str, version: int, *, actor: str | None, action: str = "move"
) -> tuple[int | None, int] | None:
    """Point `label` at `version`; returns (from, to), or None when it already pointed there."""
    row = version_row(session, prompt, version)
    if row.archived:
        raise Conflict(
            f"{prompt.name}:{version} is archived; unarchive it first "
            f"(llmops prompts label {prompt.name} {version} archived --remove)"
        )
    current = session.get(PromptLabel, (id_of(prompt), label))
    if current is not None and current.version == version:
        return None
    old = current.version if current else None
    if current is None:
        session.add(PromptLabel(prompt_id=id_of(prompt), label=label, version=version, updated_by=actor))
    else:
        current.version, current.updated_by, current.updated_at = version, actor, utcnow()
        session.add(current)
    _record(session, prompt, label, action, old, version, actor)
    session.flush()
    return old, version


def remove_label(
    session: Session, prompt: Prompt, label: str, *, actor: str | None, action: str = "remove"
) -> int | None:
    current = session.get(PromptLabel, (id_of(prompt), label))
    if current is None:
        return None
    old = current.version
    session.delete(current)
    _record(session, prompt, label, action, old, None, actor)
    session.flush()
    return old


def set_archived(
    session: Session,
    prompt: Prompt,
    version: int,
    archived: bool,
    *,
    actor: str | None,
    action: str | None = None,
) -> bool:
    """Archive or unarchive a version; returns whether anything changed."""
    row = version_row(session, prompt, version)
    if row.archived == archived:
        return False
    if archived:
        pointing = sorted(label for label, v in labels_of(session, id_of(prompt)).items() if v == version)
        if pointing:
            raise Conflict(
                f"{prompt.name}:{version} is labelled {', '.join(pointing)}; move the label(s) before archiving"
            )
    row.archived = archived
    session.add(row)
    if archived:
        _record(session, prompt, ARCHIVED, action or "archive", None, version, actor)
    else:
        _record(session, prompt, ARCHIVED, action or "unarchive", version, None, actor)
    session.flush()
    return True


def record_sync_agreement(
    session: Session, prompt: Prompt, label: str, version: int | None, *, actor: str | None
) -> None:
    """Note that the files now agree with where someone put a label, so it follows them again.

    For `archived`, `version` is the version whose flag the files agree with.
    """
    _record(session, prompt, label, SYNC, version, version, actor)


def is_move(event: PromptLabelEvent | LabelEvent) -> bool:
    """A move or removal a rollback can undo (a sync's agreement moved nothing)."""
    if event.action == SYNC:
        return event.from_version != event.to_version
    return event.action in ("move", "remove")


def _archives(event: PromptLabelEvent) -> bool:
    return event.action == "archive" or (
        event.action == SYNC and event.from_version is None and event.to_version is not None
    )


def label_events(session: Session, prompt_id: int, label: str | None = None) -> list[PromptLabelEvent]:
    query = select(PromptLabelEvent).where(col(PromptLabelEvent.prompt_id) == prompt_id)
    if label is not None:
        query = query.where(col(PromptLabelEvent.label) == label)
    return list(session.exec(query.order_by(col(PromptLabelEvent.id))).all())


def previous_target(events: list[PromptLabelEvent]) -> int | None:
    """Where a rollback sends a label: each move pushes its origin, each rollback pops one.

    So rolling back twice walks two steps back instead of toggling between the last two.
    """
    stack: list[int | None] = []
    for event in events:
        if is_move(event):
            stack.append(event.from_version)
        elif event.action == "rollback" and stack:
            stack.pop()
    if not stack:
        raise Conflict("nothing to roll back: the label has never moved")
    return stack[-1]


def rollback(
    session: Session, prompt: Prompt, label: str, *, actor: str | None
) -> tuple[int | None, int | None]:
    if label == ARCHIVED:
        # Undo the most recent archiving that still holds.
        for event in reversed(label_events(session, id_of(prompt), ARCHIVED)):
            version = event.to_version  # not None where _archives(event)
            if _archives(event) and version is not None and version_row(session, prompt, version).archived:
                set_archived(session, prompt, version, False, actor=actor)
                return version, None
        raise Conflict(f"nothing to roll back: no version of {prompt.name!r} is archived")
    target = previous_target(label_events(session, id_of(prompt), label))
    current = session.get(PromptLabel, (id_of(prompt), label))
    if target is None:
        raise Conflict(
            f"{prompt.name}@{label} had no earlier target to roll back to; "
            f"point it elsewhere with `llmops prompts label` or remove it with --remove"
        )
    row = version_row(session, prompt, target)
    if row.archived:
        raise Conflict(
            f"cannot roll {prompt.name}@{label} back to archived version {target}; unarchive it first"
        )
    old = current.version if current else None
    if current is None:
        session.add(PromptLabel(prompt_id=id_of(prompt), label=label, version=target, updated_by=actor))
    else:
        current.version, current.updated_by, current.updated_at = target, actor, utcnow()
        session.add(current)
    _record(session, prompt, label, "rollback", old, target, actor)
    session.flush()
    return old, target


def event_view(event: PromptLabelEvent) -> LabelEvent:
    return LabelEvent(
        label=event.label,
        action=event.action,
        from_version=event.from_version,
        to_version=event.to_version,
        actor=event.actor,
        created_at=event.created_at,
    )
