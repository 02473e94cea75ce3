"""A sequence classifier the user has, in Hugging Face format in a local directory: Meta's
Prompt Guard 2, a DeBERTa prompt-injection model, a toxicity model. Never on by default;
the project ships no such model.

```yaml
guardrails:
  input:
    - check: hf_classifier
      name: prompt_guard            # a name of its own, to use it twice
      action: block
      roles: [user, tool]
      options:
        path: /models/Llama-Prompt-Guard-2-86M
        labels: [LABEL_1]           # the labels that count; default: every label but the first
        threshold: 0.5
```

Loaded once, when the pipeline is built (a missing directory, label or `transformers`
stops the gateway at start-up, not a request). It needs torch and transformers: the
`semantic` extra. The model runs off the event loop, in a worker thread (the check is
async, like the judge), one call at a time per loaded model, with the check's timeout.

What it reads is bounded: the text is cut into windows of `window_chars` characters
that overlap by `overlap_chars`; at most `max_windows` of them are read, the first, the
last and the rest spread evenly between (a planted instruction sits anywhere in a
document, often at its end), each truncated to `max_length` tokens. The score is the
largest over the windows of the flagged labels' probability (softmax; sigmoid for a
multi-label model, then the largest flagged label).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection

INSTALL_HINT = "the hf_classifier check needs torch and transformers: pip install 'llmops[semantic]'"


class HfClassifierOptions(CheckOptions):
    # A directory with config.json, the weights and the tokenizer (save_pretrained's layout).
    path: str
    # The labels (names from the model's config, id2label) whose probability counts as
    # flagged; default: every label but the first (label 0 is "benign" in such models).
    labels: list[str] | None = None
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # Tokens per window the model reads (the model's own limit when lower).
    max_length: int = Field(default=512, ge=8)
    window_chars: int = Field(default=2000, ge=64)
    overlap_chars: int = Field(default=200, ge=0)
    max_windows: int = Field(default=8, ge=1)
    # Torch threads for this model (None: torch's default).
    threads: int | None = Field(default=None, ge=1)


def windows(text: str, size: int, overlap: int, limit: int) -> list[str]:
    """`text` cut into windows of `size` characters overlapping by `overlap`; at most
    `limit`: the first, the last and the others spread evenly between."""
    if len(text) <= size:
        return [text]
    step = max(1, size - overlap)
    starts = list(range(0, len(text) - size + 1, step))
    if starts[-1] + size < len(text):
        starts.append(len(text) - size)  # the last window ends with the text
    if len(starts) > limit:
        if limit == 1:
            starts = [starts[0]]
        else:
            picked = {round(i * (len(starts) - 1) / (limit - 1)) for i in range(limit)}
            starts = [starts[i] for i in sorted(picked)]
    return [text[s : s + size] for s in starts]


class _Model:
    """The loaded tokenizer and model, with a lock: one inference at a time per model."""

    def __init__(self, options: HfClassifierOptions):
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:
            raise ValueError(INSTALL_HINT) from exc
        directory = Path(options.path).expanduser()
        if not (directory / "config.json").is_file():
            raise ValueError(f"no Hugging Face model in {directory} (config.json not found)")
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(directory))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(directory))
        self.model.eval()
        config = self.model.config
        self.id2label: dict[int, str] = {int(k): str(v) for k, v in config.id2label.items()}
        self.multi_label = config.problem_type == "multi_label_classification"
        limit = getattr(config, "max_position_embeddings", None) or options.max_length
        self.max_length = min(options.max_length, int(limit))
        self.lock = threading.Lock()

    def probabilities(self, texts: list[str], threads: int | None) -> list[list[float]]:
        torch = self.torch
        with self.lock:
            if threads:
                torch.set_num_threads(threads)
            batch = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True,
                                   return_tensors="pt")
            with torch.inference_mode():
                logits = self.model(**batch).logits
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            return probs.tolist()


@register
class HfClassifierCheck(Check):
    name: ClassVar[str] = "hf_classifier"
    is_async = True  # a model call: in a worker thread, off the event loop
    block_message = "The request was blocked by a content classifier."
    Options = HfClassifierOptions

    def __init__(self, options: HfClassifierOptions):
        super().__init__(options)
        self._model = _Model(options)
        id2label = self._model.id2label
        known = {label: i for i, label in id2label.items()}
        if options.labels is None:
            flagged = [i for i in sorted(id2label) if i != min(id2label)]
        else:
            unknown = [label for label in options.labels if label not in known]
            if unknown:
                raise ValueError(f"labels {unknown} are not the model's; its labels: {', '.join(known)}")
            flagged = [known[label] for label in options.labels]
        if not flagged:
            raise ValueError("no label would count as flagged: give options.labels")
        self._flagged = flagged

    def classify(self, text: str) -> tuple[float, tuple[str, ...]]:
        """The score (the flagged labels' probability, largest over the windows) and the
        flagged labels at or above the threshold."""
        opts: HfClassifierOptions = self.options  # type: ignore[assignment]
        parts = windows(text, opts.window_chars, opts.overlap_chars, opts.max_windows)
        rows = self._model.probabilities(parts, opts.threads)
        score = 0.0
        hit: set[str] = set()
        for row in rows:
            if self._model.multi_label:
                value = max(row[i] for i in self._flagged)
                hit.update(self._model.id2label[i] for i in self._flagged if row[i] >= opts.threshold)
            else:
                value = sum(row[i] for i in self._flagged)
                if value >= opts.threshold:
                    hit.add(self._model.id2label[max(self._flagged, key=lambda i: row[i])])
            score = max(score, value)
        return score, tuple(sorted(hit))

    def scan(self, view: TextView) -> Detection | None:
        if not view.text.strip():
            return None
        score, labels = self.classify(view.text)
        if not labels:
            return None
        return Detection(score=round(score, 4), labels=labels)

    async def ascan(self, text: str) -> Detection | None:
        return await asyncio.to_thread(self.scan, TextView(text))

