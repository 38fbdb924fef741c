"""budget-watchdog: keeps pay-per-token LLM API spend inside its budget.

Nothing is imported here on purpose: `budget-watchdog gate` must start as fast as
Python itself, so every submodule is imported only by the command that needs it.
"""

__version__ = "0.2.0"
