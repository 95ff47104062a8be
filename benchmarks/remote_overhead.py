"""What computing the checks remotely costs: the quickstart suite run locally and against a service on this machine
(`python -m pytest_aigve serve` on 127.0.0.1, the same device), cold (empty feature cache and blob store) and warm
(a re-run), with the remote/local ratio of the wall time of each pytest run and the bytes uploaded (0 on the warm
re-run: the service has every video by its hash).

    python benchmarks/remote_overhead.py [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "benchmark-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_service(folder: Path, device: str) -> tuple[subprocess.Popen[bytes], str]:
    (folder / "token").write_text(TOKEN + "\n")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pytest_aigve", "serve", "--port", str(port), "--token-file",
                                str(folder / "token"), "--store-dir", str(folder / "store"), "--cache-dir",
                                str(folder / "service-cache"), "--device", device],
                               stdout=(folder / "service.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/v1/healthz", timeout=5).close()
            return process, url
        except (urllib.error.URLError, OSError):
            if process.poll() is not None:
                raise SystemExit(f"the service exited: {(folder / 'service.log').read_text()}") from None
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the service did not start")


def run(project: Path, name: str, *options: str) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--aigve-suite",
                           "quickstart.yaml", "--aigve-report-dir", name, *options], cwd=project,
                          capture_output=True, text=True, env={**os.environ, "AIGVE_REMOTE_TOKEN": TOKEN})
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"pytest ({name}) exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    records = json.loads((project / name / "aigve-results.json").read_text())["records"]
    return seconds, records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="the service's and the local run's device (default cpu)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aigve-remote-bench-") as temp:
        folder = Path(temp)
        project = folder / "project"
        shutil.copytree(ROOT / "example_suites" / "videos", project / "videos")
        shutil.copy(ROOT / "example_suites" / "quickstart.yaml", project / "quickstart.yaml")
        process, url = start_service(folder, args.device)
        try:
            local_options = ("--aigve-device", args.device, "--aigve-cache-dir", str(folder / "local-cache"))
            local_cold, local_records = run(project, "local-cold", *local_options)
            local_warm, _ = run(project, "local-warm", *local_options)
            remote_cold, remote_records = run(project, "remote-cold", "--aigve-remote", url)
            remote_warm, warm_records = run(project, "remote-warm", "--aigve-remote", url)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)

    def uploaded(records: list[dict[str, Any]]) -> int:
        return sum(int(r["details"]["remote"]["uploaded_bytes"]) for r in records if "remote" in r["details"])

    same = all(a["value"] == b["value"] and a["per_video"] == b["per_video"]
               for a, b in zip(local_records, remote_records, strict=True))
    print(f"quickstart suite, {len(local_records)} checks, device {args.device}, service on 127.0.0.1")
    print(f"  local  cold {local_cold:7.2f} s   warm {local_warm:7.2f} s")
    print(f"  remote cold {remote_cold:7.2f} s   warm {remote_warm:7.2f} s")
    print(f"  remote/local ratio: cold {remote_cold / local_cold:.2f}, warm {remote_warm / local_warm:.2f}")
    print(f"  bytes uploaded: cold run {uploaded(remote_records)}, warm re-run {uploaded(warm_records)}")
    print(f"  scores and per-video scores identical to the local run: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
