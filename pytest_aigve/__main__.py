"""Command line: `python -m pytest_aigve weights fetch fid i3d`, `weights list`, `weights random`,
`cache clear`, `make-example`, `compare A B`, `validate SUITE...`, `serve` (the remote evaluation service)."""

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
    fetching.add_argument("names", nargs="+", help="weights keys (see `weights list`) or metric names (fid, fvd, ...)")
    fetching.add_argument("--dir", type=Path, default=None,
                          help="target folder (default: $AIGVE_WEIGHTS_DIR, else the torch hub cache)")
    fetching.add_argument("--mirror", default=None, help="base URL of a mirror holding the files by name")
    fetching.add_argument("--force", action="store_true", help="download again even if the file exists")
    randoms = weights_commands.add_parser(
        "random", help="write deterministic random weights (to try suites offline; every score is marked)")
    randoms.add_argument("--dir", type=Path, required=True,
                         help="target folder (required: random weights never go where real ones are looked up)")
    randoms.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    randoms.add_argument("names", nargs="*",
                         help="weights keys or metric names (default: every entry; the video-quality networks are "
                              "full size, about 400 MB together)")

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

    serving = commands.add_parser("serve", help="the remote evaluation service (`pytest --aigve-remote URL`); "
                                  "needs the serve extra: pip install 'pytest-aigve[serve]'")
    serving.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serving.add_argument("--port", type=int, default=8750, help="port (default 8750)")
    serving.add_argument("--token-file", type=Path, default=None,
                         help="bearer tokens, one per line (required unless listening on a loopback address)")
    serving.add_argument("--store-dir", type=Path, default=None,
                         help="uploaded videos, one folder per token (default: <cache dir>/../remote-store)")
    serving.add_argument("--quota-mb", type=int, default=20480, help="stored uploads per token (default 20480)")
    serving.add_argument("--max-upload-mb", type=int, default=4096, help="largest video upload (default 4096)")
    serving.add_argument("--max-request-kb", type=int, default=8192, help="largest JSON request (default 8192)")
    serving.add_argument("--blob-ttl-hours", type=float, default=168.0,
                         help="uploads unused this long are deleted (default 168)")
    serving.add_argument("--queue-size", type=int, default=32, help="checks waiting at most; more: 503 (default 32)")
    serving.add_argument("--lease-seconds", type=float, default=60.0,
                         help="a waiting check its client has not asked about this long is cancelled (default 60)")
    serving.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    serving.add_argument("--weights-dir", type=Path, default=None, help="weights folder (default: $AIGVE_WEIGHTS_DIR)")
    serving.add_argument("--cache-dir", type=Path, default=None, help="feature cache (default: $AIGVE_CACHE_DIR)")
    serving.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                         help="a module defining pytest_aigve_register_metrics/_backbones (repeatable)")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
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

            return cli_random(args.dir, args.seed, args.names)
        return registry.cli_fetch(args.names, args.dir or env.weights_dir, args.mirror, args.force,
                                  env.cache_dir, env.rehash_weights)
    folder = args.dir or env.cache_dir
    if args.action == "path":
        print(folder)
        return 0
    from .features import clear_cache

    print(f"removed {clear_cache(folder)} cached feature files from {folder}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        from .remote.server import ServiceConfig, read_tokens, serve
    except ImportError as exc:
        print(f"serve needs FastAPI and uvicorn ({exc}): pip install 'pytest-aigve[serve]'")
        return 2
    env = environment()
    try:
        tokens = read_tokens(args.token_file) if args.token_file else []
    except OSError as exc:
        print(f"serve: --token-file {args.token_file}: {exc.strerror or exc}")
        return 2
    if args.token_file and not tokens:
        print(f"serve: --token-file {args.token_file} holds no token")
        return 2
    config = ServiceConfig(
        host=args.host, port=args.port, tokens=tokens,
        store_dir=args.store_dir or env.cache_dir.parent / "remote-store",
        quota_bytes=args.quota_mb * 1024**2, max_upload_bytes=args.max_upload_mb * 1024**2,
        max_request_bytes=args.max_request_kb * 1024, blob_ttl_s=args.blob_ttl_hours * 3600,
        queue_capacity=args.queue_size, lease_s=args.lease_seconds, device=args.device,
        weights_dir=args.weights_dir or env.weights_dir, cache_dir=args.cache_dir or env.cache_dir,
        allow_unverified_weights=env.allow_unverified_weights, plugins=list(args.plugin))
    try:
        return serve(config)
    except SystemExit as exc:
        print(exc)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
