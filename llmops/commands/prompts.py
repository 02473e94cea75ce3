"""`llmops prompts ...`: the prompt registry from the shell.

A reference is `name`, `name@label` or `name:version`; `name` alone means production
if the prompt has that label, else latest.
"""

from __future__ import annotations

import argparse
import getpass
import os
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


def cmd_sync(args) -> int:
    report = _registry(args).sync(args.directory, actor=args.actor or _default_actor())
    for result in report.prompts:
        parts = []
        if result.created:
            parts.append("created " + ", ".join(f"v{db}" for _, db in result.created))
        for file_version, db_version in sorted(result.renumbered.items()):
            parts.append(f"file v{file_version} is v{db_version}")
        for label, (old, new) in result.moved.items():
            parts.append(f"{label}: {old or '-'} -> {new or 'removed'}")
        if result.archived:
            parts.append("archived " + ", ".join(f"v{v}" for v in result.archived))
        if result.unarchived:
            parts.append("unarchived " + ", ".join(f"v{v}" for v in result.unarchived))
        if result.description_changed:
            parts.append("description updated")
        print(f"{result.name}: {'; '.join(parts) if parts else 'up to date'}")
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

    p = sub.add_parser("sync", parents=[common], help="make the registry match prompts/*.yaml")
    p.add_argument("directory")
    p.add_argument("--actor", default=None)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("export", parents=[common], help="write every prompt to DIR/NAME.yaml")
    p.add_argument("directory")
    p.set_defaults(func=cmd_export)
