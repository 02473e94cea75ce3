"""The gateway's monitoring loop, on a background thread: online evals every
`online_eval.interval`, the drift report every `drift.interval` (then alerts), and the
latest figures for /metrics' gauges, read without touching the database."""

from __future__ import annotations

import logging
import threading
import time

from llmops.governance.side_work import set_nice
from llmops.monitoring.alerts import send_alerts
from llmops.monitoring.config import MonitoringConfig
from llmops.monitoring.drift import OVERALL, Report, build_report, save_report
from llmops.monitoring.scoring import score_pending

log = logging.getLogger("llmops.monitoring")

Labels = tuple[str, ...]


class MonitorWorker:
    def __init__(self, config: MonitoringConfig, database_url: str | None = None):
        self.config = config
        self.database_url = database_url
        self.report: Report | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if config.online_eval.enabled and config.online_eval.suite:
            from llmops.monitoring.scoring import SuiteChecks

            SuiteChecks.load(config.online_eval.suite)  # a bad suite stops start-up, not each run

    @property
    def wanted(self) -> bool:
        return self.config.online_eval.enabled or self.config.drift.enabled

    def start(self) -> MonitorWorker:
        if self._thread is None and self.wanted:
            self._thread = threading.Thread(target=self._run, name="llmops-monitor", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        set_nice(threading.get_native_id(), 10)
        due = {"score": 0.0, "report": 0.0}
        evals, drift = self.config.online_eval, self.config.drift
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if evals.enabled and now >= due["score"]:
                    due["score"] = now + evals.interval
                    score_pending(self.database_url, evals)
                if drift.enabled and now >= due["report"]:
                    due["report"] = now + drift.interval
                    self.run_report()
            except Exception:
                log.exception("monitoring: a scoring or report run failed; next run as scheduled")
            wait = (
                min(
                    d
                    for name, d in due.items()
                    if (name == "score" and evals.enabled) or (name == "report" and drift.enabled)
                )
                - time.monotonic()
            )
            self._stop.wait(max(0.05, wait))

    def run_report(self) -> Report:
        report = build_report(self.database_url, self.config.drift)
        self.report = report
        save_report(report, self.database_url, every=self.config.drift.interval)
        send_alerts(report, self.config.drift, self.config.alerts, self.database_url)
        return report

    # -- gauges (read at scrape time) -------------------------------------------------------

    def drift_scores(self) -> dict[Labels, float]:
        """(subject, prompt, model, metric) -> the check's effect size (PSI, Cramér's V, ...)."""
        out: dict[Labels, float] = {}
        for s in self.report.subjects if self.report else []:
            for c in s.checks:
                if c.effect is not None and c.kind != "score":
                    out[(s.key, _prompt(s), s.model or "", c.metric)] = round(c.effect, 6)
        return out

    def drift_alarms(self) -> dict[Labels, float]:
        out: dict[Labels, float] = {}
        for s in self.report.subjects if self.report else []:
            for c in s.checks:
                if c.status != "too_few":
                    out[(s.key, _prompt(s), s.model or "", c.metric)] = 1.0 if c.status == "alarm" else 0.0
        return out

    def eval_means(self) -> dict[Labels, float]:
        """(prompt, model, metric) -> the recent window's mean online eval score."""
        out: dict[Labels, float] = {}
        for s in self.report.subjects if self.report else []:
            for c in s.checks:
                if c.kind == "score" and isinstance(c.recent, float):
                    out[(_prompt(s), s.model or "", c.metric)] = round(c.recent, 6)
        return out


def _prompt(subject) -> str:
    if subject.key == OVERALL:
        return OVERALL
    return f"{subject.prompt}:{subject.version}" if subject.prompt else ""
