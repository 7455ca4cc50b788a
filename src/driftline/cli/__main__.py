"""``python -m driftline.cli``: the ``driftline`` command."""

import sys

from driftline.cli import main

if __name__ == "__main__":
    sys.exit(main())
