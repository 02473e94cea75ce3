"""Column types shared by every table module, and `table_of` for reading a model's table."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Table, inspect
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the offset on disk)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def table_of(model: type[SQLModel]) -> Table:
    """The Core `Table` of a `table=True` SQLModel class, for queries written in Core.

    SQLModel's metaclass gives such a class `__table__`, but SQLModel does not declare that
    attribute, so type checkers reject `Model.__table__`; the class's mapper holds the same
    Table (`inspect(Model).local_table is Model.__table__`).
    """
    table = inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table=True SQLModel class")
    return table
