"""User-facing errors. Each message says where, what was found, and what to do."""

from __future__ import annotations

from pathlib import Path


class AigveError(Exception):
    """Base class: the message is complete and is shown without a traceback."""


class SuiteError(AigveError):
    """A problem in a suite file (or a file it points to), located by file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {message}")


class VideoError(AigveError):
    """A single video cannot be used: names the file, the problem and the fix."""

    def __init__(self, path: Path | str, problem: str, hint: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint
        text = f"{self.path}: {problem}"
        if hint:
            text += f"; {hint}"
        super().__init__(text)


class MetricError(AigveError):
    """A metric cannot compute on the given inputs (never silently a pass)."""


class ParamError(AigveError):
    """A metric or protocol parameter is invalid; `key` names it so the suite can point at its line."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)
