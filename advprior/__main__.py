"""``python -m advprior``: the console script, for when ``advprior`` is not on PATH."""

import sys

from advprior.cli import main

sys.exit(main())
