"""One contract over every registered repository-scoped stream (``STREAM_CLASSES``), through ``read``.

A new stream read once per repository gets these checks by being registered: the request URL and its
first-page ``pagelen``, pagination by the ``next`` link verbatim, the parent fields on every record, a
plain 403 or a 404 on one repository skipping only it with one warning, and Bitbucket's scope error
failing the stream with a message naming the class's ``required_scope``.
"""

from __future__ import annotations

from typing import Any, Dict
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from airbyte_cdk.models import SyncMode

from source_bitbucket.streams import STREAM_CLASSES
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream
from unit_tests.conftest import API, WORKSPACE, page, repository, repository_url, run_read

LISTING = f"{API}/repositories/{WORKSPACE}"
SCOPED = [c for c in STREAM_CLASSES if issubclass(c, RepositoryScopedStream)]


def item(stream_class, n: int) -> Dict[str, Any]:
    """A minimal API object: the stream's own key fields and its cursor, dated after start_date."""
    key = [stream_class.primary_key] if isinstance(stream_class.primary_key, str) else stream_class.primary_key
    values: Dict[str, Any] = {"id": n, "hash": f"{n:040x}", "uuid": f"{{0000{n:04d}-0000-0000-0000-000000000000}}"}
    record = {field: values[field] for field in key if not field.startswith("repository_")}
    record[stream_class.cursor_field] = f"2024-03-0{n}T00:00:00+00:00"
    return record


def arm(stream_class, second: Dict[str, Any]) -> tuple:
    """Two repositories: the first answers two pages, the second answers ``second`` (responses kwargs)."""
    repos = [repository(1), repository(2)]
    responses.get(LISTING, json=page(repos))
    first = repository_url(repos[0], stream_class.resource)
    next_url = f"{first}?page=2&pagelen={stream_class.page_size}&opaque=kept"
    responses.get(first, json=page([item(stream_class, 1)], next_url),
                  match=[responses.matchers.query_param_matcher({"pagelen": str(stream_class.page_size)}, strict_match=False)])
    responses.get(first, json=page([item(stream_class, 2)]),
                  match=[responses.matchers.query_param_matcher({"page": "2", "pagelen": str(stream_class.page_size), "opaque": "kept"})])
    responses.get(repository_url(repos[1], stream_class.resource), **second)
    return repos, first, next_url


@pytest.mark.parametrize("status, body", [(403, {"type": "error", "error": {"message": "Forbidden"}}),
                                          (404, {"type": "error", "error": {"message": "Repository not found"}})])
@pytest.mark.parametrize("stream_class", SCOPED, ids=lambda c: c.name)
@responses.activate
def test_a_repository_scoped_stream_pages_decorates_and_skips_one_repository(config, stream_class, status, body):
    repos, first, next_url = arm(stream_class, {"status": status, "json": body})

    output = run_read({**config, "num_workers": 1}, [stream_class.name], SyncMode.incremental)

    assert not output.errors
    calls = [c.request.url for c in responses.calls if c.request.url.startswith(first)]
    assert urlparse(calls[0]).path == urlparse(first).path
    assert parse_qs(urlparse(calls[0]).query)["pagelen"] == [str(stream_class.page_size)]
    assert calls[1] == next_url  # followed verbatim: nothing re-appended
    records = [r.record.data for r in output.records]
    assert len(records) == 2
    assert all(r["repository_uuid"] == repos[0]["uuid"] and r["repository_full_name"] == repos[0]["full_name"] for r in records)
    warnings = [m.log.message for m in output.logs if "Skipping repository" in m.log.message]
    assert len(warnings) == 1 and repos[1]["full_name"] in warnings[0] and f"HTTP {status}" in warnings[0], warnings


@pytest.mark.parametrize("stream_class", SCOPED, ids=lambda c: c.name)
@responses.activate
def test_a_scope_error_fails_a_repository_scoped_stream_naming_its_scope(config, stream_class):
    scope_error = {"type": "error", "error": {"message": "Your credentials lack one or more required privilege scopes.",
                                              "detail": {"required": [], "granted": ["read:user:bitbucket"]}}}
    arm(stream_class, {"status": 403, "json": scope_error})

    output = run_read({**config, "num_workers": 1}, [stream_class.name], SyncMode.incremental, expect_failure=True)

    messages = [e.trace.error.message for e in output.errors if e.trace.error.stream_descriptor]
    assert messages and all(stream_class.required_scope in m for m in messages), messages
