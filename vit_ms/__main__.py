"""``python -m vit_ms COMMAND ...``: see vit_ms/cli.py."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
