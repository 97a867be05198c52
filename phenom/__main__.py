"""`python -m phenom` = the `phenom` command."""

import sys

from phenom.cli import main

if __name__ == "__main__":
    sys.exit(main())
