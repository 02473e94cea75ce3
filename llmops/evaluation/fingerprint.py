"""What exactly a run ran on: content hashes of its data, prompts, models and scorers.

Two runs of the same suite are only comparable on what they share. Every run records
(in `parameters["fingerprint"]`):

- `suite`: the suite file's bytes, and `case_files`: each cases file's bytes;
- `cases`: the expanded cases (variables, expected output, context, assertions) as data,
  so an edit anywhere that changes what is asked shows, however it was written;
- `prompts`: each prompt's reference, name, version and a hash of its template, messages
  and model config (an inline prompt, version 0, is identified by that hash alone);
- `models`: each model id's model and parameters;
- `scorers`: the version of each scorer the assertions use (a local detector's
  config's hash for a detector, the judge model's name for judged checks).

`llmops eval compare` says what differs and compares only the cases both runs have;
`llmops eval datasets` lists each dataset's versions and the runs made on them.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from llmops.evaluation.suites import CaseFile, CaseSpec, Suite

_JUDGED = {"llm-rubric", "factuality", "answer-relevance"}


def digest(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:16]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


@cache
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return digest(Path(path).read_bytes())


def file_digest(path: Path) -> str:
    stat = path.stat()
    return _file_digest(str(path), stat.st_mtime_ns, stat.st_size)


def _scorer_versions(suite: Suite, cases: list[CaseSpec]) -> dict[str, str]:
    versions: dict[str, str] = {}
    for case in cases:
        for spec in case.assertions:
            if spec.type == "faithfulness":
                scorer = spec.scorer or "offline"
                if scorer == "judge":
                    versions[f"faithfulness:{scorer}"] = spec.provider or (
                        suite.judge.model if suite.judge else ""
                    )
                elif spec.model:
                    path = Path(spec.model).expanduser()
                    config = path / "config.json"
                    versions[f"faithfulness:{spec.model}"] = (
                        file_digest(config) if config.is_file() else "missing"
                    )
                elif scorer == "entailment":
                    from llmops.evaluation.alignment import HEAD_FILE

                    versions["faithfulness:entailment"] = file_digest(HEAD_FILE)
                else:
                    versions["faithfulness:offline"] = "lexical-1"
            elif spec.type in _JUDGED:
                versions[f"{spec.type}:judge"] = spec.provider or (suite.judge.model if suite.judge else "")
    return dict(sorted(versions.items()))


def fingerprint(suite: Suite, prompts: list[Any]) -> dict[str, Any]:
    """The run's fingerprint (see the module docstring); `prompts` are the resolved ones."""
    base = Path(suite.path).parent if suite.path else Path.cwd()
    case_files = {}
    for item in suite.cases:
        if not isinstance(item, CaseFile | str):
            continue
        name = item if isinstance(item, str) else item.file
        path = base / name
        case_files[name] = file_digest(path) if path.is_file() else "missing"
    expanded = suite.expanded_cases()  # reads the cases files: once
    cases = [case.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"description", "metadata"}) for case in expanded]
    suite_file = Path(suite.path) if suite.path else None
    prompt_prints = {}
    for prompt in prompts:
        view = prompt.view
        template = digest(_canonical([view.kind, view.template, view.messages, view.model_config]))
        prompt_prints[prompt.key] = {
            "ref": prompt.ref,
            "name": view.name,
            "version": view.version,
            "template": template,
        }
    return {
        "suite": file_digest(suite_file)
        if suite_file and suite_file.is_file()
        else digest(_canonical(suite.model_dump(mode="json"))),
        "case_files": case_files,
        "cases": digest(_canonical(cases)),
        "case_count": len(cases),
        "prompts": prompt_prints,
        "models": {m.key: {"model": m.model, "params": m.params} for m in suite.models},
        "scorers": _scorer_versions(suite, expanded),
    }


def differences(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """What differs between two runs' fingerprints, in words (empty when nothing does)."""
    if not before or not after:
        return ["one run has no fingerprint (made before llmops recorded them): its data cannot be checked"]
    found = []
    if before.get("cases") != after.get("cases"):
        found.append(f"the cases differ ({before.get('case_count')} cases {before.get('cases')} -> "
                     f"{after.get('case_count')} cases {after.get('cases')})")  # fmt: skip
    for name in sorted(set(before.get("case_files", {})) | set(after.get("case_files", {}))):
        a, b = before.get("case_files", {}).get(name), after.get("case_files", {}).get(name)
        if a != b:
            found.append(f"cases file {name} differs ({a or 'absent'} -> {b or 'absent'})")
    for key in sorted(set(before.get("prompts", {})) | set(after.get("prompts", {}))):
        a, b = before.get("prompts", {}).get(key), after.get("prompts", {}).get(key)
        if a is None or b is None:
            found.append(f"prompt {key} is only in the {'current' if a is None else 'baseline'} run")
        elif a["template"] != b["template"]:
            found.append(f"prompt {key} changed: {a['name']}:{a['version']} -> {b['name']}:{b['version']}")
    if before.get("models") != after.get("models"):
        found.append("the models or their parameters differ")
    for name in sorted(set(before.get("scorers", {})) | set(after.get("scorers", {}))):
        a, b = before.get("scorers", {}).get(name), after.get("scorers", {}).get(name)
        if a != b:
            found.append(f"scorer {name} differs ({a or 'unused'} -> {b or 'unused'})")
    return found
