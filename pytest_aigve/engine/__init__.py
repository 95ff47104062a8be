"""The evaluation engine: a check's inputs by role (inputs.py), what a process shares (context.py), evaluating a
check into a final result (evaluate.py), and the paired comparison of set-level scores with a baseline
(paired.py). No pytest here: items.py is the glue."""

from .context import EvalContext
from .evaluate import CheckResult, evaluate_check

__all__ = ["CheckResult", "EvalContext", "evaluate_check"]
