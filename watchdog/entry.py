"""The `budget-watchdog` console script: `gate` is dispatched before anything else loads.

Batch jobs run `gate` before every launch, so it must start as fast as Python does: this
module imports only `sys`, and hands every other command to `watchdog.cli`.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of `budget-watchdog` and `python -m watchdog`; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "gate":
        from watchdog.gate import main as gate_main

        return gate_main(args[1:])
    from watchdog.cli import main as cli_main

    return cli_main(args)
