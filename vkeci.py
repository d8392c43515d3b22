"""Launcher: `python vkeci.py ...` behaves like the `vkeci` console script and `python dist/vkeci.pyz`."""

import sys

from vkeci.cli import main

if __name__ == "__main__":
    sys.exit(main())
