"""Partial responses: Bitbucket's ``fields=`` query parameter.

``fields`` holds comma-separated dotted paths (the parameter may also be repeated). Lists are
transparent (``values.id`` is the ``id`` of every value) and ``*`` matches every key at its level.

* ``-path`` removes a field; ``+path`` adds a field the resource leaves out by default (the
  ``hidden`` paths, e.g. ``values.participants`` of a pull request collection page).
* A path without a sign limits the answer to the paths named (plus the ``+`` ones), from the whole
  object, hidden fields included: ``fields=values.id,values.state`` answers ``{"values": [{"id", "state"}]}``,
  without ``next``, ``page``, ``size`` or ``pagelen`` unless they are named too (``fields=values.id,next``).
* ``+`` must be sent as ``%2B``: a bare ``+`` arrives as a space, and the path then counts as unsigned.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Sequence, Tuple

Path = Tuple[str, ...]


def parse(values: Iterable[str]) -> List[Tuple[str, Path]]:
    """``["+values.a,-links", ...]`` -> ``[("+", ("values", "a")), ("-", ("links",))]`` (empty parts dropped)."""
    out = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            sign = part[:1] if part[:1] in ("+", "-") else ""
            path = tuple(p for p in part[len(sign):].strip().split(".") if p)
            if path:
                out.append((sign, path))
    return out


def apply(doc: Any, values: Sequence[str], hidden: Sequence[Path] = ()) -> Any:
    """The answer ``doc`` (the whole object, hidden fields included) as ``fields=values`` shapes it."""
    specs = parse(values)
    added = [p for s, p in specs if s == "+"]
    if any(s == "" for s, _ in specs):
        out = _project(doc, [p for s, p in specs if s in ("", "+")])
    else:
        out = doc
        for path in hidden:
            if not any(_overlaps(path, a) for a in added):
                out = _remove(out, path)
    for sign, path in specs:
        if sign == "-":
            out = _remove(out, path)
    return out


def _overlaps(a: Path, b: Path) -> bool:
    n = min(len(a), len(b))
    return all(x == y or "*" in (x, y) for x, y in zip(a[:n], b[:n]))


def _project(node: Any, paths: List[Path]) -> Any:
    if any(not p for p in paths):
        return node
    if isinstance(node, list):
        return [_project(item, paths) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        rests = [p[1:] for p in paths if p[0] in (key, "*")]
        if rests:
            out[key] = _project(value, rests)
    return out


def _remove(node: Any, path: Path) -> Any:
    if isinstance(node, list):
        return [_remove(item, path) for item in node]
    if not isinstance(node, dict) or not path:
        return node
    head, rest = path[0], path[1:]
    out = {}
    for key, value in node.items():
        if head in (key, "*"):
            if not rest:
                continue
            value = _remove(value, rest)
        out[key] = value
    return out
