"""``python -m crowd``: the ``crowd`` command line."""

import sys

from crowd.cli import main

if __name__ == "__main__":
    sys.exit(main())
