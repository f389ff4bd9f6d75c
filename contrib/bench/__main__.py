"""``python -m contrib.bench [--quick] [--out bench/] [--sessions N]``: every benchmark, one report."""

import sys

from .runner import main

sys.exit(main())
