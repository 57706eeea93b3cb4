"""The ``imgpipe`` command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("imgpipe: the local cloud commands are not available in this version", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
