"""``python -m dispatch_service`` / ``crowd-dispatch``: run the dispatch service."""

from __future__ import annotations

from dispatch_service.server import create_server
from dispatch_service.settings import DispatchSettings
from service_common.server import run_service


def main() -> None:
    """Serve until SIGTERM/SIGINT (``--help`` lists every setting)."""
    run_service(DispatchSettings, create_server, prog="crowd-dispatch")


if __name__ == "__main__":
    main()
