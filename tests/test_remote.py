"""The remote evaluation service (`python -m pytest_aigve serve`) and `--aigve-remote`: against a real service
process on 127.0.0.1 (a random free port), with the pixel metrics on tiny synthetic videos (no weights)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_aigve.remote.client import RemoteClient, RemoteError, _screen
from pytest_aigve.remote.jobs import CANCELLED, DONE, Job, JobQueue
from pytest_aigve.remote.wire import check_request

from .helpers import SUITE, make_videos, read_json, records_by_check

TOKEN = "test-token-0123456789"
ROOT = Path(__file__).resolve().parents[1]

# metrics only the service knows (its --plugin): one that crashes, one that takes its time
PLUGIN = '''
import time
from pytest_aigve.metrics.base import PerVideoMetric

class Exploding(PerVideoMetric):
    name = "exploding"
    description = "raises"
    higher_is_better = True

    def score_clip(self, clip):
        raise RuntimeError("boom from the metric")

class Sleepy(PerVideoMetric):
    name = "sleepy"
    description = "sleeps"
    higher_is_better = True

    def score_clip(self, clip):
        time.sleep(0.6)
        return 1.0

def pytest_aigve_register_metrics(registry):
    registry.register("exploding", Exploding)
    registry.register("sleepy", Sleepy)
'''

SKIP_SUITE = SUITE.replace("suite: demo\n", "suite: demo\non_bad_video: skip\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/v1/healthz", timeout=10) as answer:
            return dict(json.loads(answer.read()))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_service(folder: Path, *extra: str) -> Service:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(f"# the test token\n{TOKEN}\n")
    (folder / "aigve_remote_test_plugin.py").write_text(PLUGIN)
    port = free_port()
    log = folder / "service.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_aigve", "serve", "--host", "127.0.0.1", "--port", str(port), "--token-file",
         str(folder / "token"), "--store-dir", str(folder / "store"), "--cache-dir", str(folder / "cache"),
         "--device", "cpu", "--plugin", "aigve_remote_test_plugin", *extra],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    service = Service(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited: {log.read_text()}")
        try:
            service.health()
            return service
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"the service did not start: {log.read_text()}")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the module: a queue of 2 (the load test meets a full queue), 1 MB uploads, 64 kB requests."""
    running = start_service(tmp_path_factory.mktemp("service"), "--queue-size", "2", "--max-upload-mb", "1",
                            "--max-request-kb", "64", "--lease-seconds", "30")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo suite (flicker, psnr, ssim) over two reference and two generated videos."""
    root = tmp_path_factory.mktemp("videos")
    make_videos(root)
    (root / "aigve_demo.yaml").write_text(SUITE)
    return root


def flicker_request(root: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """The wire request of the suite's flicker check, and its files by hash."""
    from pytest_aigve.metrics.registry import MetricRegistry
    from pytest_aigve.suite import load_suite

    suite = load_suite(root / "aigve_demo.yaml", MetricRegistry())
    check = next(c for c in suite.checks if c.metric == "flicker")
    hashes, problems = _screen(suite, check)
    return check_request(suite, check, hashes, problems, True, False), {sha: p for p, sha in hashes.items()}


def http(method: str, url: str, body: bytes | None = None, token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


# what differs between any two runs (timings; decodes and interval reuse depend on what the process cached) and
# where it ran: everything else of a record is the same, local or remote
DIFFERING = {"timings", "device", "decode_workers"}
DIFFERING_DETAILS = {"videos_decoded", "interval_reused", "remote"}


def test_remote_run_records_equal_local_and_rerun_uploads_nothing(pytester: pytest.Pytester, service: Service,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    make_videos(pytester.path)
    (pytester.path / "videos" / "gen" / "clip_9.mp4").write_bytes(b"")  # skipped (empty file), in both runs
    pytester.makefile(".yaml", aigve_demo=SKIP_SUITE)
    monkeypatch.setenv("AIGVE_REMOTE_TOKEN", TOKEN)
    local = pytester.runpytest_subprocess("--aigve-report-dir", "local", "--aigve-cache-dir", "local-cache")
    uploaded_before = service.health()["uploads"]["bytes"]
    remote = pytester.runpytest_subprocess("--aigve-report-dir", "remote", "--aigve-remote", service.url)
    local.assert_outcomes(passed=3)
    remote.assert_outcomes(passed=3)
    local_records = records_by_check(read_json(pytester.path / "local" / "aigve-results.json"))
    remote_records = records_by_check(read_json(pytester.path / "remote" / "aigve-results.json"))
    assert set(local_records) == set(remote_records) == {"flicker[gen]", "psnr[ref-vs-gen]", "ssim[ref-vs-gen]"}
    for check, local_record in local_records.items():
        remote_record = remote_records[check]
        assert set(remote_record) == set(local_record)
        for key in set(local_record) - DIFFERING:
            if key == "details":
                assert ({k: v for k, v in remote_record[key].items() if k not in DIFFERING_DETAILS}
                        == {k: v for k, v in local_record[key].items() if k not in DIFFERING_DETAILS}), check
            else:
                assert remote_record[key] == local_record[key], (check, key)
        assert remote_record["interval"] is not None
        where = remote_record["details"]["remote"]
        assert where["url"] == service.url and where["device"] == "cpu" == remote_record["device"]
        assert where["version"] == service.health()["version"]
    assert remote_records["flicker[gen]"]["videos_skipped"] == [{"video": "clip_9.mp4", "reason": "file is empty (0 "
                                                                                                   "bytes)"}]
    first_upload = sum(r["details"]["remote"]["uploaded_bytes"] for r in remote_records.values())
    assert first_upload > 0  # only what this store lacked
    assert service.health()["uploads"]["bytes"] - uploaded_before == first_upload

    again = pytester.runpytest_subprocess("--aigve-report-dir", "again", "--aigve-remote", service.url)
    again.assert_outcomes(passed=3)
    records = records_by_check(read_json(pytester.path / "again" / "aigve-results.json"))
    assert [r["details"]["remote"]["uploaded_bytes"] for r in records.values()] == [0, 0, 0]
    assert service.health()["uploads"]["bytes"] - uploaded_before == first_upload
    assert {check: r["value"] for check, r in records.items()} == {c: r["value"] for c, r in local_records.items()}


def test_wrong_token_is_401_and_does_no_work(service: Service, videos: Path) -> None:
    request, _ = flicker_request(videos)
    before = service.health()
    for token in ("wrong", None):
        status, body = http("POST", f"{service.url}/v1/checks", json.dumps(request).encode(), token)
        assert status == 401, body
        status, _ = http("PUT", f"{service.url}/v1/blobs/{'0' * 64}", b"x", token)
        assert status == 401
    after = service.health()
    assert after["queue"]["completed"] == before["queue"]["completed"]
    assert after["uploads"] == before["uploads"]
    with pytest.raises(RemoteError, match="refused the token"):
        RemoteClient(service.url, "wrong").run_check(*flicker_request(videos))


def test_uploads_are_verified_and_bounded(service: Service, tmp_path: Path) -> None:
    store = [p for p in (service.log.parent / "store").rglob("*") if p.is_file()]
    data = os.urandom(4096)
    sha = hashlib.sha256(data).hexdigest()
    status, body = http("PUT", f"{service.url}/v1/blobs/{sha}", data[:-1] + b"!")  # corrupted on the way
    assert status == 400 and "does not match its hash" in body["detail"]
    big = os.urandom(1024 * 1024 + 10)  # over --max-upload-mb 1
    status, body = http("PUT", f"{service.url}/v1/blobs/{hashlib.sha256(big).hexdigest()}", big)
    assert status == 413 and "limit" in body["detail"]
    assert [p for p in (service.log.parent / "store").rglob("*") if p.is_file()] == store  # nothing kept
    status, body = http("POST", f"{service.url}/v1/blobs/missing", json.dumps({"hashes": [sha]}).encode())
    assert (status, body) == (200, {"missing": [sha]})
    status, body = http("POST", f"{service.url}/v1/blobs/missing", json.dumps({"hashes": ["a" * 64] * 2000}).encode())
    assert status == 413  # over --max-request-kb 64
    status, body = http("PUT", f"{service.url}/v1/blobs/{sha}", data)
    assert status == 201 and body["stored"] is True
    assert http("POST", f"{service.url}/v1/blobs/missing", json.dumps({"hashes": [sha]}).encode())[1] == {
        "missing": []}
    status, body = http("PUT", f"{service.url}/v1/blobs/..%2F..%2Fetc", data)
    assert status in (400, 404)
    (tmp_path / "big.mp4").write_bytes(big)
    with pytest.raises(RemoteError, match="over the upload limit of the remote service"):  # said before sending
        RemoteClient(service.url, TOKEN).upload({hashlib.sha256(big).hexdigest(): tmp_path / "big.mp4"})


def test_unknown_metric_and_bad_params_give_the_local_message(service: Service, videos: Path) -> None:
    from pytest_aigve.errors import AigveError
    from pytest_aigve.metrics.registry import MetricRegistry

    request, files = flicker_request(videos)
    RemoteClient(service.url, TOKEN).upload(files)
    registry = MetricRegistry()
    with pytest.raises(AigveError) as unknown:
        registry.get("flikcer")
    status, body = http("POST", f"{service.url}/v1/checks", json.dumps({**request, "metric": "flikcer"}).encode())
    assert status == 400
    # the service knows its plugin's metrics too, otherwise the same list
    assert body["detail"].split("; known:")[0] == str(unknown.value).split("; known:")[0]
    with pytest.raises(AigveError) as bad:
        registry.get("flicker").validate_params({"data_rangee": 1})
    status, body = http("POST", f"{service.url}/v1/checks",
                        json.dumps({**request, "params": {"data_rangee": 1}}).encode())
    assert (status, body["detail"]) == (400, str(bad.value))
    assert "data_rangee" in body["detail"]


def test_crash_in_a_metric_is_500_and_the_service_keeps_serving(service: Service, videos: Path) -> None:
    request, files = flicker_request(videos)
    client = RemoteClient(service.url, TOKEN)
    with pytest.raises(RemoteError) as crash:
        client.run_check({**request, "metric": "exploding"}, files)
    text = str(crash.value)
    assert "(500)" in text and "exploding crashed on the service: RuntimeError: boom from the metric" in text
    assert service.url in text
    result, _ = client.run_check(request, files)
    assert result["state"] == DONE and 0.5 < result["result"]["value"] <= 1.0


def test_client_disconnect_cancels_its_waiting_check(service: Service, videos: Path) -> None:
    request, files = flicker_request(videos)
    RemoteClient(service.url, TOKEN).upload(files)
    status, busy = http("POST", f"{service.url}/v1/checks", json.dumps({**request, "metric": "sleepy"}).encode())
    assert status == 202
    status, waiting = http("POST", f"{service.url}/v1/checks", json.dumps(request).encode())
    assert status == 202 and waiting["state"] == "queued"
    port = int(service.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as connection:  # a long poll, then the client goes away
        connection.sendall(f"GET /v1/checks/{waiting['id']}?wait=15 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                           f"{TOKEN}\r\n\r\n".encode())
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, state = http("GET", f"{service.url}/v1/checks/{waiting['id']}")
        if state["state"] != "queued":
            break
        time.sleep(0.05)
    assert (status, state["state"]) == (409, CANCELLED), state
    assert "disconnected" in state["error"]["error"] and state["timings"].get("run_s") is None  # never ran
    status, done = http("GET", f"{service.url}/v1/checks/{busy['id']}?wait=15")
    assert (status, done["state"]) == (200, DONE)


def test_store_quota_and_expiry(tmp_path: Path) -> None:
    import asyncio

    from pytest_aigve.remote.store import BlobStore, UploadError

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start:start + 1000]

    store = BlobStore(tmp_path, quota_bytes=10_000, max_upload_bytes=8_000, ttl_s=3600)
    first, second = os.urandom(6_000), os.urandom(6_000)
    sha_first, sha_second = hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()
    assert asyncio.run(store.put("owner", sha_first, chunks(first), None)) is True
    assert asyncio.run(store.put("owner", sha_first, chunks(first), None)) is False  # stored already
    with pytest.raises(UploadError, match="quota") as over:
        asyncio.run(store.put("owner", sha_second, chunks(second), None))  # no Content-Length: found while reading
    assert over.value.status == 413
    assert store.missing("owner", [sha_first, sha_second]) == [sha_second]
    assert store.missing("another", [sha_first]) == [sha_first]  # a store per token
    assert asyncio.run(store.put("another", sha_second, chunks(second), None)) is True
    old = time.time() - 7200
    os.utime(store.path("owner", sha_first), (old, old))  # unused for two hours: expired
    assert store.missing("owner", [sha_first]) == [sha_first]
    assert not store.path("owner", sha_first).exists()
    assert [p.name for p in (tmp_path / "owner" / "blobs").iterdir()] == []  # no partial uploads left


def test_queue_lease_cancels_a_job_nobody_asks_about() -> None:
    release = threading.Event()
    ran: list[str] = []

    def run(job: Job) -> dict[str, Any]:
        ran.append(job.id)
        release.wait(5)
        return {"value": 1.0}

    queue = JobQueue(run, capacity=2, lease_s=0.2, keep_s=60)
    try:
        first = queue.submit(Job("owner", {}))
        while queue.running is None:
            time.sleep(0.01)
        forgotten = queue.submit(Job("owner", {}, request_id="r1"))
        assert queue.submit(Job("owner", {}, request_id="r1")) is forgotten  # a retried submission: the same job
        time.sleep(0.5)
        release.set()
        assert first.done.wait(5) and forgotten.done.wait(5)
        assert first.state == DONE and forgotten.state == CANCELLED and ran == [first.id]
        assert queue.get("someone else", first.id) is None
    finally:
        release.set()
        queue.stop()


def test_load_four_clients_lose_no_request_and_keep_the_queue_bound(service: Service, videos: Path) -> None:
    request, files = flicker_request(videos)
    request["with_interval"] = False
    expected, _ = RemoteClient(service.url, TOKEN).run_check(request, files)
    before = service.health()["queue"]
    values: list[float] = []
    problems: list[BaseException] = []

    def client_run() -> None:
        client = RemoteClient(service.url, TOKEN)
        for _ in range(20):
            try:
                values.append(client.run_check(request, files)[0]["result"]["value"])
            except BaseException as exc:  # every failure is reported by the assertion below
                problems.append(exc)

    threads = [threading.Thread(target=client_run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    after = service.health()["queue"]
    assert not problems and len(values) == 80
    assert set(values) == {expected["result"]["value"]}
    assert after["completed"] - before["completed"] == 80
    assert after["max_waiting_seen"] <= after["capacity"] == 2
    print(f"submissions refused as busy (503) and retried: {after['refused_busy'] - before['refused_busy']}")


def test_unreachable_service_is_an_error_naming_the_url(videos: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = RemoteClient(url, TOKEN, retries=1, backoff_s=0.01)
    with pytest.raises(RemoteError, match=f"remote service {url} unreachable"):
        client.run_check(*flicker_request(videos))
    assert client.unreachable


def test_service_killed_mid_run_errors_items_and_writes_reports(pytester: pytest.Pytester, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    own = start_service(tmp_path / "own")
    try:
        make_videos(pytester.path)
        pytester.makefile(".yaml", aigve_demo=SUITE)
        pytester.makeconftest("""
import os, signal

killed = []

def pytest_runtest_teardown(item):
    if not killed:  # after the first check: the service dies mid-run
        killed.append(item)
        os.kill(int(os.environ["AIGVE_TEST_SERVICE_PID"]), signal.SIGKILL)
""")
        monkeypatch.setenv("AIGVE_REMOTE_TOKEN", TOKEN)
        monkeypatch.setenv("AIGVE_TEST_SERVICE_PID", str(own.process.pid))
        result = pytester.runpytest_subprocess("--aigve-report-dir", "reports", "--aigve-remote", own.url)
        result.assert_outcomes(passed=1, errors=2)
        records = records_by_check(read_json(pytester.path / "reports" / "aigve-results.json"))
        errors = [r for r in records.values() if r["outcome"] == "error"]
        assert len(errors) == 2
        for record in errors:
            assert f"remote service {own.url} unreachable" in record["message"]
        assert (pytester.path / "reports" / "aigve-report.html").is_file()
        assert (pytester.path / "reports" / "aigve-summary.md").is_file()
    finally:
        own.stop()


def test_no_token_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest_aigve", "serve", "--host", "0.0.0.0", "--port",
                           str(free_port()), "--store-dir", str(tmp_path / "store")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and "refusing to listen on 0.0.0.0 without a token" in done.stdout


def test_openapi_lists_the_versioned_api(service: Service) -> None:
    with urllib.request.urlopen(f"{service.url}/openapi.json", timeout=10) as answer:
        paths = set(json.loads(answer.read())["paths"])
    assert {"/v1/healthz", "/v1/metrics", "/v1/blobs/missing", "/v1/blobs/{sha256}", "/v1/checks",
            "/v1/checks/{job_id}"} <= paths
    status, listing = http("GET", f"{service.url}/v1/metrics")
    assert status == 200 and listing["metrics"]["psnr"]["inputs"] == "paired"
    assert listing["metrics"]["fid"]["weights"] == {"inception": False}


def docker_available() -> bool:
    """A docker client and a daemon it reaches."""
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


@pytest.mark.skipif(not docker_available(), reason="docker (client and daemon) is not available here")
def test_dockerfile_builds() -> None:
    done = subprocess.run(["docker", "build", "-q", "-t", "pytest-aigve-serve:test", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-4000:]
