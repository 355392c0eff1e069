"""``python -m profile_service`` / ``crowd-profile``: run the profile service."""

from __future__ import annotations

from profile_service.server import create_server
from profile_service.settings import ProfileSettings
from service_common.server import run_service


def main() -> None:
    """Serve until SIGTERM/SIGINT (``--help`` lists every setting)."""
    run_service(ProfileSettings, create_server, prog="crowd-profile")


if __name__ == "__main__":
    main()
