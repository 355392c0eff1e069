"""The ``crowd`` command line: track events, read profiles, publish definitions, inspect actions.

Targets and the API key come from flags or the environment (``CROWD_PROFILE_TARGET``,
``CROWD_DISPATCH_TARGET``, ``CROWD_API_KEY``). Output is proto JSON, one document per
line, so it pipes into ``jq``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from crowd.client import CrowdClient, violations


def _print(message: Message | dict[str, Any]) -> None:
    if isinstance(message, Message):
        doc = json_format.MessageToDict(message, preserving_proto_field_name=True)
    else:
        doc = message
    print(json.dumps(doc, sort_keys=True))


def _parse_data(pairs: Sequence[str], raw_json: str | None) -> dict[str, Any]:
    """``key=value`` pairs (values parsed as JSON when they parse, else strings)."""
    data: dict[str, Any] = json.loads(raw_json) if raw_json else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--data expects key=value, got {pair!r}")
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value
    return data


def _load_definitions(path: str) -> Any:
    # The service's loader accepts the friendly YAML form (short enum names, "30m" durations).
    from crowd.definitions.loader import load_definitions

    return load_definitions(path)


async def _run(args: argparse.Namespace) -> None:
    client = CrowdClient(args.profile, args.dispatch, api_key=args.api_key or "")
    async with client:
        command = args.command
        if command == "track":
            result = await client.track_event(
                args.visitor_id,
                args.name,
                _parse_data(args.data, args.json),
                event_id=args.event_id,
            )
            _print(result)
        elif command == "profile":
            _print(
                await client.get_profile(
                    args.visitor_id, attribute_id=args.attribute, value=args.value
                )
            )
        elif command == "delete":
            _print(
                await client.delete_profile(
                    args.visitor_id, attribute_id=args.attribute, value=args.value
                )
            )
        elif command == "defs":
            if args.defs_command == "get":
                _print(await client.get_definitions(args.version))
            elif args.defs_command == "validate":
                _print(await client.validate_definitions(_load_definitions(args.file)))
            else:
                _print(await client.publish_definitions(_load_definitions(args.file)))
        elif command == "audience":
            if args.audience_command == "size":
                _print(
                    {
                        "audience_id": args.audience_id,
                        "size": await client.audience_size(args.audience_id),
                    }
                )
            else:
                _print({"profile_ids": await client.audience_members(args.audience_id)})
        elif command == "trace":
            async for entry in client.stream_trace(
                args.visitor_id or "", trace_id=args.trace_id, after=args.after
            ):
                _print(entry)
        elif command == "actions":
            if args.actions_command == "get":
                _print(await client.get_action(args.key))
            elif args.actions_command == "failed":
                for status in await client.failed_actions(args.connector):
                    _print(status)
            else:
                _print(
                    await client.retry_failed_actions(
                        args.keys, all_failed=args.all, connector_id=args.connector
                    )
                )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``crowd``."""
    parser = argparse.ArgumentParser(prog="crowd", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile",
        default=os.environ.get("CROWD_PROFILE_TARGET", "127.0.0.1:50051"),
        help="profile service host:port (env CROWD_PROFILE_TARGET)",
    )
    parser.add_argument(
        "--dispatch",
        default=os.environ.get("CROWD_DISPATCH_TARGET", "127.0.0.1:50052"),
        help="dispatch service host:port (env CROWD_DISPATCH_TARGET)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CROWD_API_KEY"),
        help="API key (env CROWD_API_KEY; prefer the environment: flags show in ps)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    track = commands.add_parser("track", help="send one event")
    track.add_argument("visitor_id")
    track.add_argument("name")
    track.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")
    track.add_argument("--json", help="event data as a JSON object")
    track.add_argument("--event-id", default="")

    for name, help_text in (("profile", "show a profile"), ("delete", "delete a profile")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("visitor_id", nargs="?", default="")
        sub.add_argument("--attribute", default="", help="visitor-ID attribute id")
        sub.add_argument("--value", default="", help="visitor-ID value")

    defs = commands.add_parser("defs", help="definitions").add_subparsers(
        dest="defs_command", required=True
    )
    defs.add_parser("get", help="show the current or a named version").add_argument(
        "--version", default=""
    )
    defs.add_parser("validate", help="validate a YAML/JSON document").add_argument("file")
    defs.add_parser("publish", help="publish a YAML/JSON document").add_argument("file")

    audience = commands.add_parser("audience", help="audiences").add_subparsers(
        dest="audience_command", required=True
    )
    audience.add_parser("size").add_argument("audience_id")
    audience.add_parser("members").add_argument("audience_id")

    trace = commands.add_parser("trace", help="follow a visitor's live trace")
    trace.add_argument("visitor_id", nargs="?", default="")
    trace.add_argument("--trace-id", default="")
    trace.add_argument("--after", default="0", help='cursor; "0" replays stored history')

    actions = commands.add_parser("actions", help="dispatch actions").add_subparsers(
        dest="actions_command", required=True
    )
    actions.add_parser("get").add_argument("key")
    failed = actions.add_parser("failed", help="list dead-lettered actions")
    failed.add_argument("--connector", default="")
    retry = actions.add_parser("retry", help="requeue dead-lettered actions")
    retry.add_argument("keys", nargs="*")
    retry.add_argument("--all", action="store_true")
    retry.add_argument("--connector", default="")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(_run(args))
    except grpc.aio.AioRpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        for field, description in violations(exc):
            print(f"  {field}: {description}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
