"""Command line: ``python -m braze_sandbox [options]``.

Every flag also reads an environment variable (``BRAZE_SANDBOX_<NAME>``); flags win.
Secrets belong in the environment or ``--api-keys-file``: a command line is visible in ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from braze_sandbox.config import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PARTNER,
    DEFAULT_PARTNER_API_KEY,
    BatchMode,
    EndpointGroup,
    RateLimit,
    SandboxConfig,
    default_rate_limits,
    parse_api_key,
)
from braze_sandbox.faults import FaultSettings
from braze_sandbox.logs import configure_logging
from braze_sandbox.sandbox import BrazeSandbox

log = logging.getLogger("braze_sandbox")
_ENV = "BRAZE_SANDBOX_"
_OFF = frozenset({"off", "none", "unlimited", "0"})


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(_ENV + name, default)


def _env_list(name: str) -> list[str]:
    # Lists in the environment are separated by ';' or whitespace (keys never contain either).
    raw = _env(name) or ""
    return [part for part in raw.replace(";", " ").split() if part]


def _rate(text: str) -> RateLimit | None:
    return None if text.strip().lower() in _OFF else RateLimit.parse(text)


def _key_file_specs(path: Path | str | None) -> list[str]:
    """The ``KEY[:PERM,PERM]`` lines of an API key file (blank lines and ``#`` comments skipped)."""
    if path is None:
        return []
    try:
        text = Path(path).read_text()
    except OSError as exc:  # the message names the file, never its content
        raise ValueError(f"cannot read the API key file {path}: {exc.strerror}") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _secret_flags(argv: Sequence[str]) -> list[str]:
    """Flags given on the command line that carry a secret (anyone can read them with ps)."""
    given = {arg.partition("=")[0] for arg in argv}
    return [flag for flag in ("--api-key", "--partner", "--client-secret") if flag in given]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for ``--help`` tests and docs)."""
    limits = default_rate_limits()

    def default_rate(group: EndpointGroup) -> str:
        return str(_env(f"{group.upper()}_RATE", str(limits[group])))

    p = argparse.ArgumentParser(
        prog="python -m braze_sandbox",
        description="Strict Braze-compatible REST sandbox (users/track, delete, identify, "
        "export/ids, partner cohorts) with rate limiting, fault injection and a request "
        "recorder under /_sandbox. Every option also reads BRAZE_SANDBOX_<OPTION> "
        "(e.g. BRAZE_SANDBOX_TRACK_RATE).",
    )
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="bind address")
    p.add_argument("--port", type=int, default=int(_env("PORT", "4010") or 4010), help="0=any")
    p.add_argument(
        "--api-key",
        action="append",
        metavar="KEY[:PERM,PERM]",
        help="REST API key and its permissions (users.track, users.delete, users.identify, "
        "users.alias.new, users.merge, users.export.ids; none or * = all). Repeatable. "
        "Visible in ps: prefer the env "
        f"BRAZE_SANDBOX_API_KEYS (';'-separated) or --api-keys-file. Default: {DEFAULT_API_KEY} "
        "with every permission.",
    )
    p.add_argument(
        "--api-keys-file",
        type=Path,
        default=_env("API_KEYS_FILE"),
        metavar="PATH",
        help="file with one KEY[:PERM,PERM] per line ('#' comments); with --api-key, both count",
    )
    p.add_argument(
        "--batch-mode",
        default=_env("BATCH_MODE", BatchMode.COMBINED75.value),
        type=BatchMode.parse,
        help="/users/track object cap: combined75 (default), per_array75, combined50",
    )
    for group, flag in (
        (EndpointGroup.TRACK, "--track-rate"),
        (EndpointGroup.IDENTITY, "--identity-rate"),
        (EndpointGroup.EXPORT, "--export-rate"),
        (EndpointGroup.COHORTS, "--cohort-rate"),
    ):
        p.add_argument(
            flag,
            default=default_rate(group),
            type=_rate,
            metavar="N/SECONDS",
            help=f"{group} limit, e.g. 3000/3, 20000/1m, 250000/1h, or off "
            f"(default {limits[group]})",
        )
    p.add_argument(
        "--window-alignment",
        choices=("clock", "first_request"),
        default=_env("WINDOW_ALIGNMENT", "clock"),
        help="rate windows start on clock multiples (Braze) or at the first request",
    )
    p.add_argument(
        "--reset-header",
        choices=("epoch", "seconds"),
        default=_env("RESET_HEADER", "epoch"),
        help="X-RateLimit-Reset as UTC epoch seconds or as seconds remaining",
    )
    p.add_argument("--fail-rate", type=float, default=float(_env("FAIL_RATE", "0") or 0))
    p.add_argument("--fail-status", type=int, default=int(_env("FAIL_STATUS", "503") or 503))
    p.add_argument("--latency-ms", type=float, default=float(_env("LATENCY_MS", "0") or 0))
    p.add_argument(
        "--latency-jitter-ms", type=float, default=float(_env("LATENCY_JITTER_MS", "0") or 0)
    )
    seed = _env("SEED")
    p.add_argument("--seed", type=int, default=int(seed) if seed else None, help="fault RNG seed")
    p.add_argument(
        "--down",
        action="store_true",
        default=(_env("DOWN", "") or "").lower() in ("1", "true", "yes"),
        help="start in down mode (every API request gets 503)",
    )
    p.add_argument(
        "--partner",
        action="append",
        metavar="NAME:PARTNER_API_KEY",
        help="cohort partner and its partner_api_key; repeatable. Env: BRAZE_SANDBOX_PARTNERS. "
        f"Default: {DEFAULT_PARTNER}:{DEFAULT_PARTNER_API_KEY}",
    )
    p.add_argument(
        "--client-secret",
        action="append",
        metavar="SECRET[:PARTNER,PARTNER]",
        help="cohort client_secret and the partners enabled for it (default all); repeatable. "
        f"Env: BRAZE_SANDBOX_CLIENT_SECRETS. Default: {DEFAULT_CLIENT_SECRET}",
    )
    p.add_argument(
        "--max-object-bytes",
        type=int,
        default=int(_env("MAX_OBJECT_BYTES", "102400") or 0),
        help="per-object size cap for /users/track (0 disables)",
    )
    p.add_argument(
        "--allow-mixed-delete",
        action="store_true",
        help="accept several identifier types in one /users/delete request",
    )
    p.add_argument(
        "--max-recorded",
        type=int,
        default=int(_env("MAX_RECORDED", "50000") or 0),
        help="recorded requests kept for /_sandbox/requests (0 = keep all)",
    )
    p.add_argument(
        "--no-record-bodies",
        action="store_true",
        help="do not keep request bodies in the recorder (long benchmarks)",
    )
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "info"), help="debug, info, warning")
    return p


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Turn parsed arguments into a :class:`SandboxConfig` (raises ``ValueError`` if bad)."""
    key_specs = [*(args.api_key or []), *_key_file_specs(args.api_keys_file)]
    key_specs = key_specs or _env_list("API_KEYS")
    api_keys = dict(parse_api_key(s) for s in key_specs) if key_specs else None
    partner_specs = args.partner or _env_list("PARTNERS")
    partners: dict[str, str] = {}
    for spec in partner_specs:
        name, _, key = spec.partition(":")
        if not name or not key:
            raise ValueError("--partner expects NAME:PARTNER_API_KEY")
        partners[name] = key
    secrets: dict[str, frozenset[str]] = {}
    for spec in args.client_secret or _env_list("CLIENT_SECRETS"):
        secret, _, names = spec.partition(":")
        enabled = frozenset(n for n in names.split(",") if n) or frozenset({"*"})
        secrets[secret] = enabled
    faults = FaultSettings(
        fail_rate=args.fail_rate,
        fail_status=args.fail_status,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        down=args.down,
        seed=args.seed,
    )
    defaults = SandboxConfig()
    return SandboxConfig(
        api_keys=api_keys if api_keys is not None else defaults.api_keys,
        batch_mode=args.batch_mode,
        rate_limits={
            EndpointGroup.TRACK: args.track_rate,
            EndpointGroup.IDENTITY: args.identity_rate,
            EndpointGroup.EXPORT: args.export_rate,
            EndpointGroup.COHORTS: args.cohort_rate,
        },
        window_alignment=args.window_alignment,
        reset_header=args.reset_header,
        partners=partners or defaults.partners,
        client_secrets=secrets or defaults.client_secrets,
        max_object_bytes=args.max_object_bytes or None,
        delete_single_id_type=not args.allow_mixed_delete,
        max_recorded_requests=args.max_recorded or None,
        record_bodies=not args.no_record_bodies,
        faults=faults,
    )


async def serve(config: SandboxConfig, host: str, port: int) -> None:
    """Run until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sandbox = BrazeSandbox(config)
    url = await sandbox.start(host, port)
    # Only counts and names: keys and secrets never reach the log.
    log.info(
        "braze_sandbox listening",
        extra={
            "fields": {
                "url": url,
                "api_keys": len(config.api_keys),
                "partners": sorted(config.partners),
                "batch_mode": str(config.batch_mode),
                "rate_limits": {str(g): str(r) for g, r in config.rate_limits.items()},
                "faults": config.faults.to_dict(),
            }
        },
    )
    try:
        await stop.wait()
    finally:
        await sandbox.stop()
        log.info("braze_sandbox stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m braze_sandbox`` and ``crowd-braze-sandbox``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(args.log_level)
    flags = _secret_flags(sys.argv[1:] if argv is None else argv)
    if flags:
        log.warning(
            "secrets on the command line are visible to every user in ps: use the environment "
            "(BRAZE_SANDBOX_API_KEYS, BRAZE_SANDBOX_PARTNERS, BRAZE_SANDBOX_CLIENT_SECRETS) "
            "or --api-keys-file instead",
            extra={"fields": {"flags": flags}},
        )
    asyncio.run(serve(config, args.host, args.port))
    return 0
