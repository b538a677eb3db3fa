"""deployments: ``GET /repositories/{workspace}/{repository}/deployments``."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, MutableMapping

from source_bitbucket.dates import parse_datetime
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream


class Deployments(RepositoryScopedStream):
    """Deployments of every repository. Primary key ``uuid``, cursor ``completed_on``, ``pagelen`` 100.

    Records gain a top-level ``completed_on`` copied from ``state.completed_on`` (real payloads
    name it so, not the spec's ``completion_date``); in-progress and undeployed deployments have
    none. The endpoint rejects ``sort`` and ignores ``q``, so the window is filtered here: a
    deployment is emitted when it has no ``completed_on`` yet (it comes again on later syncs
    until it completes) or completed after ``since``.
    """

    name = "deployments"
    primary_key = "uuid"
    cursor_field = "completed_on"
    page_size = 100
    required_scope = "read:pipeline:bitbucket"
    resource = "deployments"

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        state = record.get("state")
        completed_on = state.get("completed_on") if isinstance(state, Mapping) else None
        record["completed_on"] = completed_on
        completed = parse_datetime(completed_on)
        if completed is None or completed > parse_datetime(stream_slice["since"]):
            yield from super().transform(record, stream_slice)
