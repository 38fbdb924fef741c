"""Who did it: the name the audit trails record for a change made from the command line."""

from __future__ import annotations

import getpass
import os


def cli_actor() -> str:
    """The person behind a CLI change: the user sudo was run by, else the login, marked
    "(cli)" (the daemon's own changes say "daemon" or "rules")."""
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"{user} (cli)"
