"""A/B experiments on prompt versions: assignment, feedback, analysis.

    from llmops.experiments import ExperimentService, record_feedback, experiment_report

Names are imported lazily, so the migration runner importing `.models` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ExperimentService": "llmops.experiments.service",
    "ExperimentView": "llmops.experiments.service",
    "ActiveExperiment": "llmops.experiments.assignment",
    "Assignment": "llmops.experiments.assignment",
    "VariantSpec": "llmops.experiments.assignment",
    "SESSION_HEADER": "llmops.experiments.assignment",
    "parse_variant": "llmops.experiments.assignment",
    "record_feedback": "llmops.experiments.feedback",
    "FeedbackView": "llmops.experiments.feedback",
    "experiment_report": "llmops.experiments.report",
    "eval_scores_for": "llmops.experiments.evals",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(module), name)
