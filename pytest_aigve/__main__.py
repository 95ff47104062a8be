"""`python -m pytest_aigve make-example DIR`: write the quickstart's synthetic videos again."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_aigve")
    commands = parser.add_subparsers(dest="command", required=True)
    example = commands.add_parser("make-example", help="write the quickstart's synthetic videos")
    example.add_argument("folder", type=Path, nargs="?", default=Path("example_suites/videos"))
    args = parser.parse_args(argv)
    if args.command == "make-example":
        from .examples import make_quickstart_videos

        for path in make_quickstart_videos(args.folder):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
