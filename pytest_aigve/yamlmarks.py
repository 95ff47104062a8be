"""A YAML loader that remembers the line of every mapping, key and list item, for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import SuiteError

# A suite is a page of settings; these bounds stop an alias bomb ("billion laughs") or a pathological nesting
# before it costs minutes and gigabytes.
MAX_EXPANDED_NODES = 200_000
MAX_DEPTH = 64


class MarkedDict(dict[str, Any]):
    """A dict that knows the line it starts on and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return getattr(self, "key_lines", {}).get(key, self.line)


class MarkedList(list[Any]):
    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _MarkedLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _MarkedLoader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    mapping = MarkedDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"keys must be strings, found {key!r}", key_node.start_mark
            )
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first on line {mapping.key_lines[key]})",
                key_node.start_mark,
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


def _construct_sequence(loader: _MarkedLoader, node: yaml.SequenceNode) -> MarkedList:
    items = MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    items.line = node.start_mark.line + 1
    items.item_lines = [child.start_mark.line + 1 for child in node.value]
    return items


_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_marked_yaml(path: Path) -> Any:
    """Parse a YAML file; syntax errors become a SuiteError with the line that YAML points at."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(path, None, "suite file not found; check the path given to --aigve-suite") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(path, None, f"cannot read the suite file ({exc}); save it as UTF-8 text") from None
    loader = _MarkedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(path, node)
        return loader.construct_document(node)
    except RecursionError:
        raise SuiteError(path, None, f"the YAML is nested too deeply (more than {MAX_DEPTH} levels); a suite "
                                     "needs only a few") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        context = f" ({exc.context})" if exc.context else ""
        raise SuiteError(path, line, f"invalid YAML: {problem}{context}; fix the syntax at this line") from None
    except yaml.YAMLError as exc:
        raise SuiteError(path, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _check_size(path: Path, root: yaml.Node) -> None:
    """Count the nodes the document expands to (aliases counted at every use) without expanding it."""
    expanded: dict[int, int] = {}
    # iterative post-order walk: the node graph may be deep, and aliases make it a DAG, never a cycle for
    # the safe loader's composer (a recursive alias is a composer error)
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, children_done = stack.pop()
        if depth > MAX_DEPTH:
            raise SuiteError(path, node.start_mark.line + 1, f"the YAML is nested more than {MAX_DEPTH} levels "
                                                             "deep here; a suite needs only a few")
        if id(node) in expanded:
            continue
        children = _children(node)
        if children_done or not children:
            total = 1 + sum(expanded[id(child)] for child in children)
            if total > MAX_EXPANDED_NODES:
                raise SuiteError(path, node.start_mark.line + 1,
                                 f"the YAML expands to more than {MAX_EXPANDED_NODES:,} values here (anchors and "
                                 "aliases repeated inside each other?); write the suite out plainly")
            expanded[id(node)] = total
            continue
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children if id(child) not in expanded)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
