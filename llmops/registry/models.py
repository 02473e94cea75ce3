"""Registry tables: prompts, their immutable versions, movable labels and every label move.

A version row is written once and never updated, except its `archived` flag, which is
state about the version (hidden from `latest` and listings), not part of its content:
the content hash does not cover it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from llmops.columns import UTCDateTime, utcnow
from llmops.migrations import Migration, create_tables


class Prompt(SQLModel, table=True):
    __tablename__ = "registry_prompts"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(128), unique=True, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class PromptVersion(SQLModel, table=True):
    __tablename__ = "registry_prompt_versions"
    # The constraint is what makes concurrent writers safe even if a lock were missed.
    __table_args__ = (UniqueConstraint("prompt_id", "version", name="uq_registry_prompt_version"),)

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="registry_prompts.id", index=True)
    version: int = Field(sa_column=Column(Integer, nullable=False))
    kind: str = Field(sa_column=Column(String(8), nullable=False))  # "text" | "chat"
    # A string for a text template, a list of {role, content} for a chat template.
    template: Any = Field(sa_column=Column(JSON, nullable=False))
    variables: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # `model_config` is reserved by pydantic, hence the attribute name; the column keeps the real name.
    llm_config: dict = Field(default_factory=dict, sa_column=Column("model_config", JSON, nullable=False))
    message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    author: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    content_hash: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    archived: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class PromptLabel(SQLModel, table=True):
    """Where a label points now; its past lives in PromptLabelEvent."""

    __tablename__ = "registry_prompt_labels"

    prompt_id: int = Field(foreign_key="registry_prompts.id", primary_key=True)
    label: str = Field(sa_column=Column(String(64), primary_key=True))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    updated_by: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class PromptLabelEvent(SQLModel, table=True):
    """One label move: `action` is move, remove, rollback, archive, unarchive, or sync
    (a `prompts sync` that set the label from its file)."""

    __tablename__ = "registry_prompt_label_events"

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="registry_prompts.id", index=True)
    label: str = Field(sa_column=Column(String(64), nullable=False))
    action: str = Field(sa_column=Column(String(16), nullable=False))
    from_version: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    to_version: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    actor: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


MIGRATIONS = [
    Migration(
        "registry.0001",
        create_tables(
            "registry_prompts",
            "registry_prompt_versions",
            "registry_prompt_labels",
            "registry_prompt_label_events",
        ),
    ),
]
