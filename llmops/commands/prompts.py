"""`llmops prompts ...`: the prompt registry from the shell.

A reference is `name`, `name@label` or `name:version`; `name` alone means production
if the prompt has that label, else latest.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from llmops.commands.output import add_json_flag, print_json, print_table
from llmops.errors import InvalidInput


def _registry(args):
    from llmops.registry.service import Registry

    return Registry(args.database_url)


def _default_actor() -> str | None:
    try:
        return os.environ.get("LLMOPS_AUTHOR") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return None


def _parse_vars(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--var {pair!r}: expected key=value")
        values[key] = value
    return values


def _time(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def cmd_list(args) -> int:
    prompts = _registry(args).list_prompts()
    if args.json:
        print_json([p.to_dict() for p in prompts])
        return 0
    print_table(
        ["NAME", "LATEST", "VERSIONS", "LABELS", "UPDATED"],
        [
            [
                p.name,
                p.latest_version,
                p.version_count,
                " ".join(f"{label}={v}" for label, v in p.labels.items()),
                _time(p.updated_at),
            ]
            for p in prompts
        ],
    )
    return 0


def _print_template(view) -> None:
    if view.kind == "text":
        print(view.template)
        return
    for message in view.messages:
        print(f"[{message['role']}]")
        print(message["content"])
        print()


def cmd_show(args) -> int:
    view = _registry(args).get(args.ref)
    if args.json:
        print_json(view.to_dict())
        return 0
    print(
        f"{view.ref}  ({view.kind})  labels: {', '.join(view.labels) or '-'}"
        + ("  [archived]" if view.archived else "")
    )
    print(f"created {_time(view.created_at)} by {view.author or '-'}: {view.message}")
    print(f"hash {view.content_hash}")
    print(f"variables: {view.variables}")
    print(f"model_config: {view.model_config}")
    print()
    _print_template(view)
    return 0


def cmd_push(args) -> int:
    from llmops.registry.files import read_push_file

    pushed = read_push_file(args.file)
    view = _registry(args).create_version(
        args.name,
        template=pushed.content.template,
        messages=pushed.content.messages,
        variables=pushed.content.variables,
        model_config=pushed.content.model_config,
        message=args.message if args.message is not None else pushed.message,
        author=args.author or pushed.author or _default_actor(),
        labels=list(dict.fromkeys(pushed.labels + (args.label or []))),
        description=pushed.description,
    )
    if args.json:
        print_json(view.to_dict())
    else:
        print(f"created {view.ref}" + (f" ({', '.join(view.labels)})" if view.labels else ""))
    return 0


def cmd_label(args) -> int:
    registry = _registry(args)
    actor = args.actor or _default_actor()
    if args.remove:
        registry.remove_label(args.name, args.label, version=args.version, actor=actor)
        print(f"removed {args.label} from {args.name}:{args.version}")
    else:
        registry.set_label(args.name, args.version, args.label, actor=actor)
        print(f"{args.name}@{args.label} -> {args.version}")
    return 0


def cmd_rollback(args) -> int:
    view = _registry(args).rollback(args.name, args.label, actor=args.actor or _default_actor())
    if view is None:
        print(f"unarchived the most recently archived version of {args.name}")
    else:
        print(f"{args.name}@{args.label} -> {view.version}")
    return 0


def cmd_diff(args) -> int:
    diff = _registry(args).diff(args.name, args.v1, args.v2)
    if args.json:
        print_json(diff.to_dict())
        return 0
    if diff.unchanged:
        print(f"{args.name}:{diff.from_version} and :{diff.to_version} have the same content")
        return 0
    if diff.kind_changed:
        print("kind changed (text <-> chat)")
    if diff.template_diff:
        print(diff.template_diff, end="")
    for title, changes in (
        ("variables", diff.variables_changes),
        ("model_config", diff.model_config_changes),
    ):
        for key, value in changes["added"].items():
            print(f"{title}: + {key}: {value!r}")
        for key, value in changes["removed"].items():
            print(f"{title}: - {key}: {value!r}")
        for key, change in changes["changed"].items():
            print(f"{title}: ~ {key}: {change['from']!r} -> {change['to']!r}")
    return 0


def cmd_render(args) -> int:
    rendered = _registry(args).render(args.ref, _parse_vars(args.var))
    if args.json:
        print_json(rendered.to_dict())
    elif rendered.kind == "text":
        print(rendered.text)
    else:
        for message in rendered.messages:
            print(f"[{message['role']}]")
            print(message["content"])
            print()
    return 0


def cmd_history(args) -> int:
    history = _registry(args).history(args.name)
    if args.json:
        print_json(history.to_dict())
        return 0
    print_table(
        ["VERSION", "LABELS", "AUTHOR", "CREATED", "HASH", "MESSAGE"],
        [
            [
                v.version,
                " ".join(v.labels) + (" archived" if v.archived else ""),
                v.author,
                _time(v.created_at),
                v.content_hash[:12],
                v.message,
            ]
            for v in history.versions
        ],
    )
    if history.events:
        print()
        print_table(
            ["WHEN", "LABEL", "ACTION", "FROM", "TO", "BY"],
            [
                [_time(e.created_at), e.label, e.action, e.from_version, e.to_version, e.actor]
                for e in history.events
            ],
        )
    return 0


def _sync_database(args) -> str:
    """The database to sync into; refuses to invent one in a directory that has none.

    The default (./llmops.db) is relative to where the command runs: run from the wrong
    directory, a sync would quietly fill a new, stray database the gateway never reads.
    """
    from sqlalchemy.engine import make_url

    from llmops.settings import Settings

    explicit = args.database_url or os.environ.get("LLMOPS_DATABASE_URL")
    if explicit:
        return explicit
    default = Settings.database_url
    default_file = make_url(default).database
    if default_file is None or not Path(default_file).exists():
        raise InvalidInput(
            f"no database to sync into: LLMOPS_DATABASE_URL is not set and {Path.cwd()} has no llmops.db; "
            f"run this in your project's directory, or say where (--database-url {default} creates one here)"
        )
    return default


def _shown_database(url: str) -> str:
    """The URL without its password; a SQLite file as an absolute path, marked when it is new."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "the database given (not a URL SQLAlchemy can read)"
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return parsed.render_as_string(hide_password=True)
    path = Path(parsed.database).resolve()
    shown = parsed.set(database=str(path)).render_as_string(hide_password=True)
    return shown if path.exists() else f"{shown} (a new database)"


def _sync_summary(result) -> str:
    parts = []
    if result.created:
        parts.append("created " + ", ".join(f"v{db}" for _, db in result.created))
    for label, (old, new) in result.moved.items():
        parts.append(f"{label}: {old or '-'} -> {new or 'removed'}")
    if result.archived:
        parts.append("archived " + ", ".join(f"v{v}" for v in result.archived))
    if result.unarchived:
        parts.append("unarchived " + ", ".join(f"v{v}" for v in result.unarchived))
    if result.description_changed:
        parts.append("description updated")
    if result.adopted:
        verb = "follows" if len(result.adopted) == 1 else "follow"
        parts.append(f"{', '.join(result.adopted)} {verb} the file again")
    return "; ".join(parts)


_VERBS = {
    "move": "moved",
    "remove": "removed",
    "rollback": "rolled back",
    "archive": "archived",
    "unarchive": "unarchived",
}


def _kept_line(name: str, path: str, kept) -> str:
    last = kept.last
    verb = _VERBS.get(last.action, last.action)
    return (
        f"{name}: {kept.subject} is {kept.registry} in the registry, {kept.file} in {path}; "
        f"kept the registry's ({verb} by {last.actor or 'unknown'} at {_time(last.created_at)}); "
        "use --apply-labels to take the file's"
    )


def cmd_sync(args) -> int:
    from llmops.registry.service import Registry, SyncConflict

    url = _sync_database(args)
    print(f"syncing {args.directory} into {_shown_database(url)}")
    try:
        report = Registry(url).sync(
            args.directory, actor=args.actor or _default_actor(), apply_labels=args.apply_labels
        )
    except SyncConflict as exc:
        for conflict in exc.conflicts:
            print(f"conflict: {conflict}", file=sys.stderr)
        print(f"error: {len(exc.conflicts)} version conflict(s); nothing was synced", file=sys.stderr)
        return 1
    for result in report.prompts:
        summary = _sync_summary(result)
        if summary or not (result.kept or result.blocked):
            print(f"{result.name}: {summary or 'up to date'}")
        for kept in result.kept:
            print(_kept_line(result.name, result.path, kept))
        for message in result.blocked:
            print(f"{result.name}: not applied: {message}")
    if not report.prompts:
        print(f"no prompt files (*.yaml, *.yml) in {args.directory}")
    return 0


def cmd_export(args) -> int:
    for path in _registry(args).export(args.directory):
        print(path)
    return 0


def register(subparsers) -> None:
    # Accepted before or after the subcommand; SUPPRESS keeps the group's value when absent.
    url_help = "database URL (default: LLMOPS_DATABASE_URL or sqlite:///./llmops.db)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", default=argparse.SUPPRESS, help=url_help)

    group = subparsers.add_parser(
        "prompts",
        help="versioned prompts: push, label, diff, render, sync",
        description="The prompt registry. REF is name, name@label or name:version; name alone means "
        "the production label if the prompt has one, else latest (the highest version not archived).",
    )
    group.add_argument("--database-url", default=None, help=url_help)
    sub = group.add_subparsers(dest="prompts_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser("list", parents=[common], help="list prompts with their latest version and labels")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", parents=[common], help="show one version: REF is name, name@label or name:N")
    p.add_argument("ref")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "push", parents=[common], help="add a version from a YAML file or a text template file"
    )
    p.add_argument("name")
    p.add_argument(
        "--file", "-f", required=True, help=".yaml/.yml: one version; any other file: a text template"
    )
    p.add_argument("--message", "-m", default=None, help="commit message")
    p.add_argument("--author", default=None, help="default: LLMOPS_AUTHOR or the login name")
    p.add_argument("--label", action="append", help="move this label to the new version (repeatable)")
    add_json_flag(p)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser(
        "label", parents=[common], help="point LABEL at VERSION (label 'archived' archives it)"
    )
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("label")
    p.add_argument("--remove", action="store_true", help="remove the label (unarchive, for 'archived')")
    p.add_argument("--actor", default=None)
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("rollback", parents=[common], help="move LABEL back to its previous version")
    p.add_argument("name")
    p.add_argument("label")
    p.add_argument("--actor", default=None)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser(
        "diff", parents=[common], help="template diff and model-config changes between versions"
    )
    p.add_argument("name")
    p.add_argument("v1")
    p.add_argument("v2")
    add_json_flag(p)
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("render", parents=[common], help="render a prompt with variables")
    p.add_argument("ref")
    p.add_argument("--var", action="append", metavar="KEY=VALUE", help="a variable (repeatable)")
    add_json_flag(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("history", parents=[common], help="versions and every label move")
    p.add_argument("name")
    add_json_flag(p)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser(
        "sync",
        parents=[common],
        help="add new versions from prompts/*.yaml; move labels no one moved in the registry",
        description="Create the files' new versions and move labels to the files' values, except "
        "labels someone moved in the registry since a sync last set them: those are kept and "
        "reported. A file version that differs from the registry's is a conflict: nothing is "
        "written and the exit code is 1. Without --database-url or LLMOPS_DATABASE_URL it syncs "
        "into ./llmops.db and refuses when there is none.",
    )
    p.add_argument("directory")
    p.add_argument(
        "--actor", default=None, help="recorded with each change (default: LLMOPS_AUTHOR or the login name)"
    )
    p.add_argument(
        "--apply-labels",
        action="store_true",
        help="take the files' labels and archived flags even where someone moved them in the "
        "registry (labels the files never named stay as they are)",
    )
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("export", parents=[common], help="write every prompt to DIR/NAME.yaml")
    p.add_argument("directory")
    p.set_defaults(func=cmd_export)
