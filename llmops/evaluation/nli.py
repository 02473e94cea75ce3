"""Entailment models you have: does a piece of evidence support a claim?

`LocalDetector` loads a Hugging Face-format sequence classifier from a local directory (an
HHEM-, MiniCheck- or similar detector, or one `scripts/train_faithfulness_model.py`
trains): `{type: faithfulness, model: /path}` in a suite. Its interface, `scores(pairs)`,
gives for each (evidence, claim) pair the probability that the evidence supports the claim
and the probability that it contradicts it (zero where a model does not say).

It needs torch and transformers, which the `semantic` extra installs.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from llmops.errors import InvalidInput

# Longer evidence is cut to the sentences that share most words with the claim.
EVIDENCE_CHARS = 600
_BATCH = 16
_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


class EntailmentModel(Protocol):
    name: str

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Shape (len(pairs), 2): P(supported), P(contradicted)."""
        ...


def _require_torch(what: str = "a faithfulness detector (`model:`)") -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        raise InvalidInput(f"{what} needs torch and transformers: pip install 'llmops[semantic]'") from None
    return torch


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2}


def select_evidence(evidence: str, claim: str, budget: int = EVIDENCE_CHARS) -> str:
    """The evidence itself when short; else its sentences that share most words with the
    claim, in their original order, up to `budget` characters."""
    if len(evidence) <= budget:
        return evidence
    parts = [p.strip() for p in _SENTENCE.split(evidence) if p.strip()]
    wanted = _content_words(claim)
    ranked = sorted(range(len(parts)), key=lambda i: -len(wanted & _content_words(parts[i])))
    chosen: list[int] = []
    used = 0
    for i in ranked:
        if used + len(parts[i]) > budget and chosen:
            continue
        chosen.append(i)
        used += len(parts[i]) + 1
        if used >= budget:
            break
    return " ".join(parts[i][:budget] for i in sorted(chosen))


def _one_thread(torch: Any) -> None:
    """One torch thread unless LLMOPS_TORCH_THREADS says otherwise: with small batches on a
    shared or busy machine, torch's spinning worker threads cost several times the CPU for
    the same answers (see benchmarks/faithfulness_quality.py)."""
    torch.set_num_threads(max(1, int(os.environ.get("LLMOPS_TORCH_THREADS", "1"))))


class _Classifier:
    """A sequence-pair classifier and its tokenizer, run in batches on the CPU."""

    def __init__(self, model: Any, tokenizer: Any, max_tokens: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._lock = threading.Lock()

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Softmax over the labels (a one-logit model: sigmoid, as [p, 1-p])."""
        torch = _require_torch()
        if not pairs:
            return np.zeros((0, 2))
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out: list[np.ndarray | None] = [None] * len(pairs)
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), _BATCH):
                batch = order[start : start + _BATCH]
                enc = self.tokenizer(
                    [pairs[i][0] for i in batch],
                    [pairs[i][1] for i in batch],
                    truncation="only_first",
                    max_length=self.max_tokens,
                    padding=True,
                    return_tensors="pt",
                )
                logits = self.model(**enc).logits.float()
                if logits.shape[-1] == 1:
                    p = torch.sigmoid(logits[:, 0])
                    probs = torch.stack([p, 1 - p], dim=-1)
                else:
                    probs = torch.softmax(logits, dim=-1)
                for row, i in enumerate(batch):
                    out[i] = probs[row].numpy()
        return np.stack([p for p in out if p is not None])


_SUPPORTED_NAMES = ("entail", "support", "consistent", "faithful", "true")
_UNSUPPORTED_NAMES = ("not", "unsupport", "inconsistent", "hallucinat", "contradict", "refute", "false")


def _support_index(id2label: dict[int, str]) -> int | None:
    """Which output of a local detector means "supported", from its label names."""
    for i, label in sorted(id2label.items()):
        name = str(label).lower()
        if any(name.startswith(bad) for bad in _UNSUPPORTED_NAMES):
            continue
        if any(good in name for good in _SUPPORTED_NAMES):
            return int(i)
    return None


class LocalDetector:
    """A Hugging Face-format sequence classifier from a local directory.

    Its input is (evidence, claim), as HHEM's and MiniCheck's are. The "supported" output is
    found from `id2label` (a label naming entailment, support or consistency); a model with
    generic labels (LABEL_0, LABEL_1) counts its last output as "supported", the convention
    of two-class detectors, and a one-logit model its sigmoid.
    """

    def __init__(self, path: str, max_tokens: int = 512) -> None:
        _require_torch()
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()  # no bars in a CLI's or CI's output
        _one_thread(_require_torch())
        directory = Path(path).expanduser()
        if not (directory / "config.json").is_file():
            raise InvalidInput(
                f"faithfulness model {path!r}: no Hugging Face model (config.json) in that directory"
            )
        self.name = f"local:{directory.name}"
        model = AutoModelForSequenceClassification.from_pretrained(str(directory))
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        limit = min(max_tokens, int(getattr(tokenizer, "model_max_length", max_tokens) or max_tokens))
        self._classifier = _Classifier(model, tokenizer, limit)
        labels = {int(k): v for k, v in (model.config.id2label or {}).items()}
        n = model.config.num_labels
        found = _support_index(labels)
        self._supported = 0 if n == 1 else (found if found is not None else n - 1)
        contradiction = [i for i, v in labels.items() if "contradict" in str(v).lower()]
        self._contradicted = contradiction[0] if contradiction else None

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros((0, 2))
        probs = self._classifier.probabilities(pairs)
        contradicted = (
            probs[:, self._contradicted] if self._contradicted is not None else np.zeros(len(pairs))
        )
        return np.stack([probs[:, self._supported], contradicted], axis=1)


_models: dict[str, EntailmentModel] = {}
_models_lock = threading.Lock()


def entailment_model(path: str) -> EntailmentModel:
    """The detector in a local directory, loaded once per process."""
    with _models_lock:
        if path not in _models:
            _models[path] = LocalDetector(path)
        return _models[path]
