"""Command line: `python -m pytest_aigve weights fetch fid i3d`, `weights list`, `cache clear`,
`make-example`."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_aigve")
    commands = parser.add_subparsers(dest="command", required=True)

    example = commands.add_parser("make-example", help="write the quickstart's synthetic videos")
    example.add_argument("folder", type=Path, nargs="?", default=Path("example_suites/videos"))

    weights = commands.add_parser("weights", help="model weights: list or fetch")
    weights_commands = weights.add_subparsers(dest="action", required=True)
    listing = weights_commands.add_parser("list", help="every weights file, its hash and where it was found")
    listing.add_argument("--dir", type=Path, default=None, help="a weights folder to look in first")
    fetching = weights_commands.add_parser("fetch", help="download weights (by file key or metric name)")
    fetching.add_argument("names", nargs="+", help="inception, i3d, videomae, r3d18, or metric names (fid, fvd, ...)")
    fetching.add_argument("--dir", type=Path, default=None,
                          help="target folder (default: $AIGVE_WEIGHTS_DIR, else the torch hub cache)")
    fetching.add_argument("--mirror", default=None, help="base URL of a mirror holding the files by name")
    fetching.add_argument("--force", action="store_true", help="download again even if the file exists")

    cache = commands.add_parser("cache", help="the on-disk feature cache")
    cache_commands = cache.add_subparsers(dest="action", required=True)
    for action, text in (("path", "print the cache folder"), ("clear", "delete every cached feature")):
        sub = cache_commands.add_parser(action, help=text)
        sub.add_argument("--dir", type=Path, default=None, help="the cache folder (default: see README)")

    args = parser.parse_args(argv)
    if args.command == "make-example":
        from .examples import make_quickstart_videos

        for path in make_quickstart_videos(args.folder):
            print(path)
        return 0
    if args.command == "weights":
        from .features import weights as registry

        if args.action == "list":
            return registry.cli_list(args.dir)
        return registry.cli_fetch(args.names, args.dir, args.mirror, args.force)
    from .paths import default_cache_dir

    folder = args.dir or default_cache_dir()
    if args.action == "path":
        print(folder)
        return 0
    from .features import clear_cache

    print(f"removed {clear_cache(folder)} cached feature files from {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
