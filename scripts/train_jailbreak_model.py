"""Train the injection check's learned jailbreak scorer (llmops/guardrails/jailbreak_model.json).

    .venv/bin/python scripts/train_jailbreak_model.py [--data ../shared/data] [--check-only]

Reads the shared development data in place (guardrails/jailbreak_dev.jsonl: role-play
jailbreaks vs ordinary role prompts) and writes only the model: vocabulary terms with
their idf and weight. Before writing it prints how the injection check does on text it
was not trained on: 5-fold cross-validation, and trained on one half of the rows
(its "tune" and "report" halves, as benchmarks/guardrails_quality.py splits them) and
counted on the other. Needs scikit-learn (the dev extra).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmops.guardrails.jailbreak_model import MODEL_PATH, JailbreakModel  # noqa: E402
from llmops.guardrails.pipeline import Pipeline  # noqa: E402

C = 4.0
MAX_FEATURES = 8000
THRESHOLD = 0.5  # cross-validated: benign false positives 1.0%, recall 0.94 (with the cues)
MIN_WORDS = 20  # short prompts are left to the cues: a few words say too little to a word model


def fit(texts: list[str], labels: np.ndarray) -> JailbreakModel:
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=MAX_FEATURES, sublinear_tf=True)
    features = vec.fit_transform(texts)
    clf = LogisticRegression(C=C, max_iter=5000).fit(features, labels)
    terms = {
        term: [round(float(vec.idf_[i]), 6), round(float(clf.coef_[0][i]), 6)]
        for term, i in sorted(vec.vocabulary_.items())
    }
    model = JailbreakModel(terms, round(float(clf.intercept_[0]), 6), THRESHOLD, MIN_WORDS)
    # The plain-Python scorer must agree with scikit-learn (rounding aside).
    ours = np.array([model.probability(t.lower()) or 0.0 for t in texts[:200]])
    theirs = clf.predict_proba(features[:200])[:, 1]
    long_enough = np.array([model.probability(t.lower()) is not None for t in texts[:200]])
    assert np.allclose(ours[long_enough], theirs[long_enough], atol=1e-4), "scorer differs from scikit-learn"
    return model


def flags(model: JailbreakModel, cue_hits: list[bool], texts: list[str]) -> np.ndarray:
    out = []
    for hit, text in zip(cue_hits, texts, strict=True):
        p = model.probability(text.lower())
        out.append(hit or (p is not None and p >= model.threshold))
    return np.array(out)


def report(name: str, predicted: np.ndarray, labels: np.ndarray) -> None:
    recall = predicted[labels].mean()
    fpr = predicted[~labels].mean()
    print(f"{name:44s} recall={recall:.3f}  benign_fpr={fpr:.3f}  balanced_acc={(recall + 1 - fpr) / 2:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--check-only", action="store_true", help="print the figures, do not write the model")
    args = ap.parse_args()
    rows = [json.loads(line) for line in (Path(args.data) / "guardrails" / "jailbreak_dev.jsonl").open() if line.strip()]
    texts = [r["text"] for r in rows]
    labels = np.array([r["label"] == "attack" for r in rows])
    # The cues alone (the model file is not consulted: these are the hand-written checks).
    cue_pipe = Pipeline({"input": [{"check": "injection", "action": "block", "options": {"learned": False}}]})
    cue_hits = [cue_pipe.check_input(t).blocked for t in texts]
    report("cues alone, all rows", np.array(cue_hits), labels)

    predicted = np.zeros(len(texts), dtype=bool)
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, labels):
        model = fit([texts[i] for i in train], labels[train])
        predicted[test] = flags(model, [cue_hits[i] for i in test], [texts[i] for i in test])
    report("cues + model, 5-fold cross-validation", predicted, labels)

    # The "tune" half of benchmarks/guardrails_quality.py trains, its "report" half counts.
    half = np.array([int(hashlib.sha1(r["id"].encode()).hexdigest(), 16) % 2 == 0 for r in rows])
    model = fit([t for t, h in zip(texts, half, strict=True) if h], labels[half])
    unseen = ~half
    held_out = flags(model, [c for c, u in zip(cue_hits, unseen, strict=True) if u], [t for t, u in zip(texts, unseen, strict=True) if u])
    report("cues + model, trained on one half, other half", held_out, labels[unseen])
    report("cues alone, that same half", np.array(cue_hits)[unseen], labels[unseen])

    if args.check_only:
        return
    final = fit(texts, labels)
    payload = {
        "about": "llmops injection check: logistic regression over word 1-2-grams (tf-idf, sublinear tf, l2), "
                 "trained by scripts/train_jailbreak_model.py on jailbreak_dev.jsonl (jackhhao/llm-warden, MIT)",
        "intercept": final.intercept,
        "threshold": final.threshold,
        "min_words": final.min_words,
        "terms": final.terms,
    }
    MODEL_PATH.write_text(json.dumps(payload, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {MODEL_PATH.relative_to(REPO)} ({MODEL_PATH.stat().st_size // 1024} KB, {len(final.terms)} terms)")


if __name__ == "__main__":
    main()
