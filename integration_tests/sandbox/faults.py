"""Run-time fault injection rules for the sandbox server.

A rule fires on the next ``times`` requests (``times=None``: forever) whose path+query contains
``path_contains`` and that concern ``repository`` (a slug or a ``{uuid}``, braces optional, case-insensitive:
it matches the repository's URLs whichever of the two the request names, and every sub-resource of it);
with neither filter, on every request. Kinds answering instead of the API: ``429``, ``500``, ``502_html``, ``403`` (plain
``{"type": "error", "error": {"message": "Forbidden"}}``: no access to that repository), ``403_scope``
(the missing-scope body, naming the endpoint's scope), ``404``, ``drop_connection``. Kinds altering the real answer: ``malformed_json``, ``foreign_next``,
``repeat_next``. ``latency`` only delays the answer (``ms``, default 1000). Latency rules combine with one
other matching rule; otherwise the first matching rule wins.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

KINDS = ("429", "500", "502_html", "403", "403_scope", "404", "malformed_json", "drop_connection", "latency",
         "foreign_next", "repeat_next")
REPLACING = ("429", "500", "502_html", "403", "403_scope", "404", "drop_connection")
ALTERING = ("malformed_json", "foreign_next", "repeat_next")


def repository_key(identifier: str) -> str:
    """A repository slug or uuid as rules compare it: lower case, a uuid with its braces."""
    key = identifier.strip().lower()
    if len(key) == 36 and key.count("-") == 4 and all(c in "0123456789abcdef-" for c in key):
        key = "{" + key + "}"
    return key


class FaultRule:
    """One fault: ``kind``, optional ``path_contains`` and ``repository`` filters, ``times`` left (None = forever).

    Options: ``retry_after`` (429: value of the Retry-After header, seconds or an HTTP-date),
    ``ms`` (latency). ``fired`` counts how many requests it hit.
    """

    def __init__(self, kind: str, path_contains: Optional[str] = None, times: Optional[int] = 1,
                 retry_after: Any = None, ms: Optional[int] = None, repository: Optional[str] = None):
        kind = str(kind)
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {KINDS}")
        if times is not None and int(times) < 0:
            raise ValueError("times must be >= 0 or None")
        self.kind = kind
        self.path_contains = path_contains
        self.repository = repository
        self._repository_key = None if repository is None else repository_key(str(repository))
        self.times = None if times is None else int(times)
        self.retry_after = retry_after
        self.ms = 1000 if ms is None else int(ms)
        self.fired = 0

    def matches(self, target: str, repository: Sequence[str] = ()) -> bool:
        """Whether the rule is still armed and applies to this request target.

        ``repository``: the identifiers of the repository the request concerns (``repository_key`` of its
        slug and uuid), empty when it concerns none.
        """
        if self.times is not None and self.times <= 0:
            return False
        if self._repository_key is not None and self._repository_key not in repository:
            return False
        return self.path_contains is None or self.path_contains in target

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-friendly view (for the control endpoint)."""
        return {"kind": self.kind, "path_contains": self.path_contains, "repository": self.repository, "times": self.times,
                "retry_after": self.retry_after, "ms": self.ms, "fired": self.fired}


class FaultSet:
    """Thread-safe list of :class:`FaultRule`, consulted once per API request."""

    def __init__(self) -> None:
        self._rules: List[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, kind: str, path_contains: Optional[str] = None, times: Optional[int] = 1, **options) -> FaultRule:
        """Arm a new rule and return it."""
        rule = FaultRule(kind, path_contains, times, **options)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> List[FaultRule]:
        """A snapshot of the rules (exhausted ones included, with ``times == 0``)."""
        with self._lock:
            return list(self._rules)

    def __len__(self) -> int:
        return len(self.rules)

    def take(self, target: str, repository: Sequence[str] = ()) -> Tuple[int, Optional[FaultRule]]:
        """Consume the rules matching ``target`` (and ``repository``): ``(latency_ms, main_rule_or_None)``."""
        latency, chosen = 0, None
        with self._lock:
            for rule in self._rules:
                if not rule.matches(target, repository):
                    continue
                if rule.kind == "latency":
                    latency += rule.ms
                elif chosen is None:
                    chosen = rule
                else:
                    continue
                rule.fired += 1
                if rule.times is not None:
                    rule.times -= 1
        return latency, chosen
