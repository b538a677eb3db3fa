"""Shared helpers for unit tests: a config, Bitbucket-shaped pages, and a one-call read."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional
from urllib.parse import quote

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.models.scenario import ExpectedOutcome
from airbyte_cdk.test.state_builder import StateBuilder

from source_bitbucket import SourceBitbucket

API = "https://api.bitbucket.org/2.0"
WORKSPACE = "acme"
TOKEN = "ATATT-unit-test-secret-7f3c"


@pytest.fixture
def config() -> Dict[str, Any]:
    return {"workspace": WORKSPACE, "email": "dev@example.com", "api_token": TOKEN, "start_date": "2021-01-01T00:00:00Z"}


def repository(n: int, updated_on: str = "2024-01-0{n}T00:00:00.000000+00:00") -> Dict[str, Any]:
    """A repository object as listed by GET /repositories/{workspace}."""
    return {
        "type": "repository",
        "uuid": f"{{0000000{n}-0000-0000-0000-000000000000}}",
        "full_name": f"{WORKSPACE}/repo-{n}",
        "slug": f"repo-{n}",
        "name": f"repo-{n}",
        "updated_on": updated_on.format(n=n),
    }


def repository_url(repo: Mapping[str, Any], resource: str) -> str:
    return f"{API}/repositories/{WORKSPACE}/{quote(repo['uuid'], safe='')}/{resource}"


def page(values: List[Mapping[str, Any]], next_url: Optional[str] = None) -> Dict[str, Any]:
    body: Dict[str, Any] = {"values": values, "pagelen": len(values)}
    if next_url:
        body["next"] = next_url
    return body


def run_read(
    config: Mapping[str, Any],
    streams: Iterable[str],
    sync_mode: SyncMode = SyncMode.full_refresh,
    state: Optional[Mapping[str, Mapping[str, Any]]] = None,
    expect_failure: bool = False,
) -> EntrypointOutput:
    """``read`` through the real entrypoint, as the platform runs it."""
    catalog = CatalogBuilder()
    for name in streams:
        catalog = catalog.with_stream(name, sync_mode)
    state_builder = StateBuilder()
    for name, value in (state or {}).items():
        state_builder = state_builder.with_stream_state(name, value)
    return read(
        SourceBitbucket(),
        config,
        catalog.build(),
        state_builder.build() if state else None,
        expected_outcome=ExpectedOutcome.EXPECT_EXCEPTION if expect_failure else None,
    )


def final_state(output: EntrypointOutput, stream: str) -> Dict[str, Any]:
    """The stream's last emitted state as a plain dict."""
    states = [m.state.stream for m in output.state_messages if m.state.stream.stream_descriptor.name == stream]
    assert states, f"no state emitted for {stream}"
    return dict(states[-1].stream_state.__dict__)
