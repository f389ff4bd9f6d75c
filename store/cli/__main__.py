"""``python -m store.cli``: the ``sessionfs`` command."""

import sys

from store.cli.main import main

sys.exit(main())
