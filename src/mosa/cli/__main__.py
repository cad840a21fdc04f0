"""``python -m mosa.cli ...``: the same as the ``mosa`` console script."""

import sys

from mosa.cli import main

sys.exit(main())
