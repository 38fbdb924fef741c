"""`python -m watchdog`: the same as the `budget-watchdog` command."""

import sys

from watchdog.entry import main

sys.exit(main())
