"""The pytest plugin: options, hookspecs, suite collection, xdist scheduling and report wiring; the logic lives
elsewhere (scheduling.py, items.py, report/)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import hookspecs
from .options import AigveOptions, add_options, options_from_config
from .runtime import AigveRuntime
from .scheduling import check_reads, decode_group_scheduler, decode_groups, groups_by_nodeid, implies_load

if TYPE_CHECKING:
    from .suite import Suite

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
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, int | pytest.ExitCode | None,
                                                            int | pytest.ExitCode | None]:
    """`-n N` without `--dist`: xdist's `loadgroup` instead of its implied `load`, so that checks over the same
    clips share one worker's clip cache. A wrapper runs before xdist's tryfirst pytest_cmdline_main, which fills in
    `load` only while `dist` is still "no": an explicit `--dist` is kept."""
    if implies_load(config.option):
        config.option.dist = "loadgroup"
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """loadgroup, on the controller: xdist's scheduler, with the suite checks grouped by the clips they decode."""
    if config.getoption("dist") != "loadgroup":
        return None
    runtime = config.stash[RUNTIME_KEY]

    def load(path: Path) -> Suite | None:
        if not runtime.options.is_suite(path):
            return None  # a run without suites never imports torch
        from .suite import load_suite

        return load_suite(path, runtime.registry)

    return decode_group_scheduler(config, log, lambda ids: groups_by_nodeid(ids, config.rootpath, load))


@pytest.hookimpl(tryfirst=True)  # before xdist's worker turns the xdist_group marks into node id suffixes
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist") or not any(hasattr(item, "aigve_finish_report") for item in items):
        return  # no xdist (the mark is unknown) or no suite (torch stays unimported)
    from .items import CheckItem

    checks = [item for item in items if isinstance(item, CheckItem)]
    groups = decode_groups([check_reads(item.nodeid, item.suite, item.check) for item in checks])
    for item, group in zip(checks, groups, strict=True):
        item.add_marker(pytest.mark.xdist_group(name=group))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    finish = getattr(item, "aigve_finish_report", None)
    if finish is not None:
        finish(report)
    return report
