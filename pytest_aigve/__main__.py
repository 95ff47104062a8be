"""Command line: `python -m pytest_aigve weights fetch fid i3d`, `weights list`, `weights random`,
`cache clear`, `make-example`, `compare A B`, `validate SUITE...`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .paths import Environment, from_environment


def environment() -> Environment:
    """The AIGVE_* environment variables: the one place the command line reads them."""
    return from_environment(os.environ)


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
    randoms = weights_commands.add_parser(
        "random", help="write deterministic random weights (to try suites offline; every score is marked)")
    randoms.add_argument("--dir", type=Path, required=True,
                         help="target folder (required: random weights never go where real ones are looked up)")
    randoms.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    cache = commands.add_parser("cache", help="the on-disk feature cache")
    cache_commands = cache.add_subparsers(dest="action", required=True)
    for action, text in (("path", "print the cache folder"), ("clear", "delete every cached feature")):
        sub = cache_commands.add_parser(action, help=text)
        sub.add_argument("--dir", type=Path, default=None, help="the cache folder (default: see README)")

    comparing = commands.add_parser("compare", help="the scores of two stored runs side by side (baseline "
                                    "names, NAME~N for earlier versions, baseline or results JSON files)")
    comparing.add_argument("a", metavar="A", help="the earlier run: a baseline name, NAME~N, or a JSON file")
    comparing.add_argument("b", metavar="B", help="the later run: a baseline name, NAME~N, or a JSON file")
    comparing.add_argument("--dir", type=Path, default=None, help="baseline folder (default: .aigve/baselines)")
    comparing.add_argument("--markdown", action="store_true", help="print a Markdown table")

    validating = commands.add_parser("validate", help="every problem of one or more suite files at once")
    validating.add_argument("suites", nargs="+", type=Path, metavar="SUITE", help="suite YAML files")

    args = parser.parse_args(argv)
    if args.command == "validate":
        from .validate import cli_validate

        return cli_validate(args.suites)
    if args.command == "compare":
        from .compare import cli_compare

        return cli_compare(args.a, args.b, args.dir, args.markdown)
    if args.command == "make-example":
        from .examples import make_quickstart_videos

        for path in make_quickstart_videos(args.folder):
            print(path)
        return 0
    env = environment()
    if args.command == "weights":
        from .features import weights as registry

        if args.action == "list":
            return registry.cli_list(args.dir or env.weights_dir)
        if args.action == "random":
            from .random_weights import cli_random

            return cli_random(args.dir, args.seed)
        return registry.cli_fetch(args.names, args.dir or env.weights_dir, args.mirror, args.force,
                                  env.cache_dir, env.rehash_weights)
    folder = args.dir or env.cache_dir
    if args.action == "path":
        print(folder)
        return 0
    from .features import clear_cache

    print(f"removed {clear_cache(folder)} cached feature files from {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
