"""Feedback on a request: a score in 0..1 or thumbs up/down, and an optional comment.

The gateway writes its ledger asynchronously in batches, so a client may well send
feedback for a request whose ledger row is not stored yet. By default `record_feedback`
therefore accepts any well-formed request id and the report joins feedback to the
ledger when it runs: feedback for a request that never reaches the ledger (a mistyped
id) is kept but counted nowhere. `require_known=True` refuses ids the ledger lacks
with NotFound; POST /v1/feedback (a 404) and `llmops experiments feedback` (exit
status 1) both pass it, each after giving a queued row time to be flushed and asking
again, so a mistyped id is an error there rather than feedback counted nowhere.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlmodel import col

from llmops.columns import table_of
from llmops.db import get_engine, session_scope
from llmops.errors import InvalidInput, NotFound
from llmops.experiments.models import FeedbackRow

MAX_COMMENT_CHARS = 4000
MAX_REQUEST_ID_CHARS = 200
THUMBS_SCORE = {"up": 1.0, "down": 0.0}


@dataclass(frozen=True)
class FeedbackView:
    id: int
    request_id: str
    score: float | None
    thumbs: str | None
    comment: str | None
    source: str | None
    created_at: datetime

    def to_dict(self) -> dict:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


def _check_score(score: object) -> float | None:
    if score is None:
        return None
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise InvalidInput(f"score must be a number between 0 and 1, got {score!r}", param="score")
    value = float(score)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidInput(f"score must be between 0 and 1, got {score!r}", param="score")
    return value


def _check_request_id(request_id: object) -> str:
    if not isinstance(request_id, str) or not request_id.strip():
        raise InvalidInput(
            "request_id is required: the x-llmops-request-id header of the response", param="request_id"
        )
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidInput(f"request_id is longer than {MAX_REQUEST_ID_CHARS} characters", param="request_id")
    return request_id.strip()


def record_feedback(
    request_id: str,
    score: float | None = None,
    thumbs: str | None = None,
    comment: str | None = None,
    *,
    source: str | None = None,
    require_known: bool = False,
    database_url: str | None = None,
) -> FeedbackView:
    """Store one piece of feedback; several per request are allowed.

    Give a `score` in 0..1 or `thumbs` ("up" = 1, "down" = 0), not both; a comment
    alone is kept but carries no score. Raises InvalidInput on a malformed value,
    NotFound only with `require_known=True` and an id the ledger does not hold.
    """
    request_id = _check_request_id(request_id)
    value = _check_score(score)
    if thumbs is not None:
        if not isinstance(thumbs, str) or thumbs not in THUMBS_SCORE:  # a list is not even hashable
            raise InvalidInput(f"thumbs must be 'up' or 'down', got {thumbs!r}", param="thumbs")
        if value is not None:
            raise InvalidInput("give a score or thumbs, not both", param="thumbs")
        value = THUMBS_SCORE[thumbs]
    if comment is not None:
        if not isinstance(comment, str):
            raise InvalidInput("comment must be a string", param="comment")
        if len(comment) > MAX_COMMENT_CHARS:
            raise InvalidInput(f"comment is longer than {MAX_COMMENT_CHARS} characters", param="comment")
        comment = comment.strip() or None
    if value is None and comment is None:
        raise InvalidInput("feedback needs a score (0..1), thumbs (up/down) or a comment", param="score")
    if require_known:
        from llmops.experiments.ledger import ledger_has_request

        if not ledger_has_request(get_engine(database_url), request_id):
            raise NotFound(
                f"no request {request_id!r} in the ledger (it may not be flushed yet)", param="request_id"
            )
    row = FeedbackRow(request_id=request_id, score=value, thumbs=thumbs, comment=comment, source=source)
    with session_scope(database_url) as session:
        session.add(row)
        session.flush()
        return _view(row)


def feedback_for_request(request_id: str, *, database_url: str | None = None) -> list[FeedbackView]:
    with session_scope(database_url) as session:
        rows = session.scalars(
            select(FeedbackRow).where(col(FeedbackRow.request_id) == request_id).order_by(col(FeedbackRow.id))
        ).all()
        return [_view(row) for row in rows]


def _view(row: FeedbackRow) -> FeedbackView:
    assert row.id is not None
    return FeedbackView(
        row.id, row.request_id, row.score, row.thumbs, row.comment, row.source, row.created_at
    )


@dataclass
class VariantFeedback:
    """Feedback joined to one variant's requests.

    `scores` holds one value per rated request (the mean of its scores), because
    several feedbacks on one request are not independent observations.
    """

    scores: list[float]
    feedback_count: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    comments: int = 0


def feedback_by_variant(conn: Connection, ledger, experiment: str) -> dict[str, VariantFeedback]:
    """Feedback on the experiment's requests, grouped by the variant the ledger recorded."""
    fb = table_of(FeedbackRow)
    query = (
        select(ledger.c.variant, fb.c.request_id, fb.c.score, fb.c.thumbs, fb.c.comment)
        .select_from(fb.join(ledger, ledger.c.id == fb.c.request_id))
        .where(ledger.c.experiment == experiment)
    )
    per_request: dict[tuple[str, str], list[float]] = defaultdict(list)
    out: dict[str, VariantFeedback] = {}
    for variant, request_id, score, thumbs, comment in conn.execute(query):
        variant = variant or ""
        agg = out.setdefault(variant, VariantFeedback(scores=[]))
        agg.feedback_count += 1
        agg.thumbs_up += thumbs == "up"
        agg.thumbs_down += thumbs == "down"
        agg.comments += comment is not None
        if score is not None:
            per_request[(variant, request_id)].append(float(score))
    for (variant, _request_id), scores in per_request.items():
        out[variant].scores.append(math.fsum(scores) / len(scores))
    return out


@dataclass(frozen=True)
class FeedbackSummary:
    """All the feedback on one request: how many, thumbs, the mean score, the comments."""

    count: int
    thumbs_up: int
    thumbs_down: int
    mean: float | None  # mean of the scores given (thumbs count as 1 and 0)
    comments: tuple[str, ...]


def feedback_summaries(
    request_ids: list[str], *, database_url: str | None = None
) -> dict[str, FeedbackSummary]:
    """{request id: its feedback} for the ids that have any (one query per 500 ids)."""
    fb = table_of(FeedbackRow)
    rows: dict[str, list] = defaultdict(list)
    ids = sorted({r for r in request_ids if r})
    with get_engine(database_url).connect() as conn:
        for start in range(0, len(ids), 500):
            query = (
                select(fb.c.request_id, fb.c.score, fb.c.thumbs, fb.c.comment)
                .where(fb.c.request_id.in_(ids[start : start + 500]))
                .order_by(fb.c.id)
            )
            for request_id, score, thumbs, comment in conn.execute(query):
                rows[request_id].append((score, thumbs, comment))
    out = {}
    for request_id, items in rows.items():
        scores = [float(s) for s, _, _ in items if s is not None]
        out[request_id] = FeedbackSummary(
            count=len(items),
            thumbs_up=sum(t == "up" for _, t, _ in items),
            thumbs_down=sum(t == "down" for _, t, _ in items),
            mean=math.fsum(scores) / len(scores) if scores else None,
            comments=tuple(c for _, _, c in items if c),
        )
    return out
