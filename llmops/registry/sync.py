"""Make the registry match prompt files: new content becomes a version, labels move.

Versions are matched by content hash, not by number: content the registry already
holds creates nothing (so a second sync is a no-op), and a file version whose number
was taken by a version pushed from elsewhere is stored under the next free number;
the file's labels follow the content to wherever it was stored.

The file is the authority for labels: a label it does not name is removed, and
`archived: true` on an entry archives that version (false unarchives it). Versions are
never deleted, so a registry version missing from the file stays as it is.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from llmops.registry import store
from llmops.registry.files import PromptFile
from llmops.registry.models import Prompt, PromptVersion
from llmops.registry.views import PromptSyncResult


def _match_versions(
    session: Session, prompt: Prompt, spec: PromptFile, result: PromptSyncResult, actor: str | None
) -> dict[int, int]:
    rows: list[PromptVersion] = store.all_versions(session, prompt.id)
    by_number = {row.version: row for row in rows}
    by_hash: dict[str, int] = {}
    for row in rows:
        by_hash.setdefault(row.content_hash, row.version)
    mapping: dict[int, int] = {}
    for entry in sorted(spec.versions, key=lambda v: v.version):
        digest = entry.content.content_hash()
        same_number = by_number.get(entry.version)
        if same_number is not None and same_number.content_hash == digest:
            mapping[entry.version] = entry.version
        elif digest in by_hash:
            mapping[entry.version] = by_hash[digest]
        else:
            row = store.insert_version(
                session, prompt, entry.content, message=entry.message, author=entry.author or actor
            )
            by_hash[digest] = row.version
            mapping[entry.version] = row.version
            result.created.append((entry.version, row.version))
        if mapping[entry.version] != entry.version:
            result.renumbered[entry.version] = mapping[entry.version]
    return mapping


def sync_prompt(engine: Engine, spec: PromptFile, *, actor: str | None) -> PromptSyncResult:
    """Apply one file in one transaction: it lands whole or not at all."""
    result = PromptSyncResult(name=spec.name, path=str(spec.path))
    with store.write_session(engine) as session:
        prompt = store.lock_prompt(session, spec.name, create=True, description=spec.description)
        if prompt.description != spec.description:
            prompt.description = spec.description
            session.add(prompt)
            result.description_changed = True
        mapping = _match_versions(session, prompt, spec, result, actor)
        wanted_archived = {mapping[v.version]: v.archived for v in spec.versions}
        # Unarchive before labels move (a label may not point at an archived version),
        # archive after they have moved away.
        for version, archived in sorted(wanted_archived.items()):
            if not archived and store.set_archived(session, prompt, version, False, actor=actor):
                result.unarchived.append(version)
        current = store.labels_of(session, prompt.id)
        for label, file_version in sorted(spec.labels.items()):
            moved = store.move_label(session, prompt, label, mapping[file_version], actor=actor)
            if moved is not None:
                result.moved[label] = moved
        for label in sorted(set(current) - set(spec.labels)):
            old = store.remove_label(session, prompt, label, actor=actor)
            result.moved[label] = (old, None)
        for version, archived in sorted(wanted_archived.items()):
            if archived and store.set_archived(session, prompt, version, True, actor=actor):
                result.archived.append(version)
    return result
