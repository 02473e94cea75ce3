"""Alerts: a POST to the operator's webhook when a drift check alarms, at most once per
(subject, metric) per window.

The window is the recent window's span, counted from the epoch, so replicas and reruns
agree on it; the `monitor_alerts` table's primary key (subject|metric|window) is what
makes the second sender skip. The body is JSON with a `text` line (Slack and most chat
webhooks show it) and the alarms in full. The URL may hold a token: it is never logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from llmops.monitoring.config import AlertsConfig, DriftConfig
from llmops.monitoring.drift import Report, alarm_message
from llmops.monitoring.models import ALERTS

log = logging.getLogger("llmops.monitoring")


def window_of(report: Report, drift: DriftConfig) -> int:
    return int(report.generated_at.timestamp() // drift.recent)


def _claim(engine, alert_id: str, subject: str, metric: str, message: str, retry_after: float) -> bool:
    """True when this sender is the one to post this alert: it is new in its window, or an
    earlier claim was never delivered and is older than `retry_after` seconds (that sender
    failed). Either is one atomic statement, so of two replicas only one wins."""
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            conn.execute(
                ALERTS.insert().values(
                    id=alert_id,
                    created_at=now,
                    subject=subject,
                    metric=metric,
                    message=message,
                    delivered=False,
                )
            )
        return True
    except IntegrityError:
        a = ALERTS.c
        with engine.begin() as conn:
            retried = conn.execute(
                update(ALERTS)
                .where(
                    a.id == alert_id,
                    a.delivered.is_(False),
                    a.created_at < now - timedelta(seconds=retry_after),
                )
                .values(created_at=now)
            )
        return retried.rowcount == 1


def send_alerts(
    report: Report, drift: DriftConfig, alerts: AlertsConfig, database_url: str | None = None
) -> list[dict[str, Any]]:
    """Post the report's new alarms (one request); returns what was sent."""
    from llmops.db import get_engine

    if not alerts.webhook:
        return []
    engine = get_engine(database_url)
    window = window_of(report, drift)
    fresh: list[tuple[str, dict[str, Any]]] = []
    for subject, check in report.alarms():
        alert_id = f"{subject.key}|{check.metric}|{window}"[:400]
        message = alarm_message(subject, check)
        if _claim(engine, alert_id, subject.key, check.metric, message, retry_after=2 * alerts.timeout):
            fresh.append(
                (
                    alert_id,
                    {
                        "subject": subject.key,
                        "prompt": subject.prompt,
                        "version": subject.version,
                        "model": subject.model,
                        "metric": check.metric,
                        "kind": check.kind,
                        "test": check.test,
                        "p_value": check.p_value,
                        "effect": check.effect,
                        "reference": check.reference,
                        "recent": check.recent,
                        "n_reference": check.n_reference,
                        "n_recent": check.n_recent,
                        "message": message,
                    },
                )
            )
    if not fresh:
        return []
    alarms = [a for _, a in fresh]
    body = {
        "text": f"llmops monitoring: {len(alarms)} drift alarm(s)\n"
        + "\n".join(f"- {a['message']}" for a in alarms),
        "window": {"start": report.recent_start.isoformat(), "end": report.recent_end.isoformat()},
        "alarms": alarms,
    }
    try:
        response = httpx.post(alerts.webhook, json=body, timeout=alerts.timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        # Left undelivered: the next run tries again. The URL may hold a token: not logged.
        log.warning("monitoring: the alert webhook failed (%s); will retry", type(exc).__name__)
        return []
    with engine.begin() as conn:
        conn.execute(update(ALERTS).where(ALERTS.c.id.in_([i for i, _ in fresh])).values(delivered=True))
    return alarms
