"""The pytest plugin: options, hookspecs, suite collection and report wiring. Nothing else."""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs
from .options import AigveOptions, add_options, options_from_config
from .runtime import AigveRuntime

RUNTIME_KEY = pytest.StashKey[AigveRuntime]()
RESTORE_SIGTERM_KEY = pytest.StashKey[Callable[[], None]]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def _add_suite_args(config: pytest.Config, options: AigveOptions) -> None:
    """--aigve-suite alone runs just the suites; with test paths, the suites run as well."""
    if not options.suites:
        return
    suite_args = [str(path) for path in options.suites]
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = suite_args
        return
    present = {str((config.invocation_params.dir / arg.split("::")[0]).resolve()) for arg in config.args}
    config.args.extend(arg for arg in suite_args if arg not in present)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    options = options_from_config(config)
    config.stash[RUNTIME_KEY] = AigveRuntime(config, options)
    _add_suite_args(config, options)
    if _is_controller(config):
        from .interrupts import handle_sigterm_as_interrupt
        from .report.results import ResultsCollector

        collector = ResultsCollector(config, options, config.stash[RUNTIME_KEY].baseline)
        config.pluginmanager.register(collector, "aigve-results")
        config.stash[RESTORE_SIGTERM_KEY] = handle_sigterm_as_interrupt()


def pytest_unconfigure(config: pytest.Config) -> None:
    restore = config.stash.get(RESTORE_SIGTERM_KEY, None)
    if restore is not None:
        restore()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    runtime = parent.config.stash[RUNTIME_KEY]
    if file_path.suffix not in (".yaml", ".yml") or not runtime.options.is_suite(file_path):
        return None
    from .items import SuiteFile

    collector = parent.config.pluginmanager.get_plugin("aigve-results")
    if collector is not None:
        collector.enabled = True  # a suite was collected: write reports for this run
    return SuiteFile.from_parent(parent, path=file_path, runtime=runtime)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    finish = getattr(item, "aigve_finish_report", None)
    if finish is not None:
        finish(report)
    return report
