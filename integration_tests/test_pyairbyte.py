"""PyAirbyte runs the installed connector offline and loads every sandbox stream into its DuckDB cache.

PyAirbyte (the PyPI package ``airbyte``, Python < 3.13) starts the console script ``source-bitbucket``
of the venv that runs the tests (``install_if_missing=False``: nothing is installed or downloaded),
with ``AIRBYTE_OFFLINE_MODE=1`` set before ``airbyte`` is imported (otherwise it asks the connector
registry first). Its project folder, default DuckDB cache and logs go to a temporary folder.

The first read must hold exactly the sandbox's records, one row per primary key. The second read,
after some changes, goes through the state PyAirbyte stored in the cache: the incremental streams
read only what changed, while the full-refresh ``workspace_users`` is read again in full (the
connector makes it non-resumable, so it has no "sync complete" state that would read 0 rows).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional, Set, Tuple

import pytest

from integration_tests.connector_cli import stream_names
from integration_tests.ground_truth import key_fields, pipeline_truth, truth_keys
from integration_tests.sandbox import SandboxServer, generate_workspace

pytestmark = [  # noise from PyAirbyte's dependencies, not from the connector
    pytest.mark.filterwarnings("ignore:You are using a Python version:FutureWarning"),
    pytest.mark.filterwarnings("ignore:duckdb-engine doesn't yet support reflection:Warning"),
    pytest.mark.filterwarnings("ignore:The `field_name` argument:DeprecationWarning"),
]

CONNECTOR = Path(sys.executable).parent / "source-bitbucket"
EMAIL, TOKEN = "dev@example.com", "sandbox-token-pyairbyte-81c2"

STREAMS = stream_names()
PRIMARY_KEYS = {stream: key_fields(stream) for stream in STREAMS}  # the connector's primary key of each stream


def _unavailable() -> Optional[str]:
    if sys.version_info >= (3, 13):
        return "PyAirbyte (`airbyte`) supports Python < 3.13 only"
    if importlib.util.find_spec("airbyte") is None:
        return "PyAirbyte is not installed in this venv: `pip install -e \".[tests]\"` installs it (package `airbyte`)"
    if not CONNECTOR.is_file():
        return f"the connector's console script {CONNECTOR} is missing: `pip install -e .` in this venv"
    return None


@pytest.fixture(scope="module")
def ab(tmp_path_factory):
    """The ``airbyte`` module, imported offline with its project folder in a temporary folder."""
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") and sys.version_info < (3, 13):
            pytest.fail(f"CI must run the PyAirbyte test: {reason}")
        pytest.skip(reason)
    if "airbyte" in sys.modules:
        pytest.fail("`airbyte` was imported before this module set AIRBYTE_OFFLINE_MODE / AIRBYTE_PROJECT_DIR")
    project = tmp_path_factory.mktemp("pyairbyte")
    with pytest.MonkeyPatch.context() as env:
        # Read by `airbyte` at import time.
        env.setenv("AIRBYTE_OFFLINE_MODE", "1")  # no registry look-up, no telemetry
        env.setenv("DO_NOT_TRACK", "1")
        env.setenv("NO_LIVE_PROGRESS", "1")
        env.setenv("AIRBYTE_PROJECT_DIR", str(project))  # .cache/default_cache/default_cache.duckdb
        env.setenv("AIRBYTE_LOGGING_ROOT", str(project / "logs"))
        import airbyte

        assert airbyte.constants.AIRBYTE_OFFLINE_MODE
        yield airbyte


@pytest.fixture(scope="module")
def sandbox():
    workspace = generate_workspace(seed=3)
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        yield workspace, server


@pytest.fixture(scope="module")
def source(ab, sandbox):
    workspace, server = sandbox
    config = {"workspace": workspace.slug, "email": EMAIL, "api_token": TOKEN, "api_url": server.api_url,
              "start_date": "2020-01-01T00:00:00Z"}
    source = ab.get_source("source-bitbucket", config=config, local_executable=str(CONNECTOR),
                           install_if_missing=False)
    source.select_all_streams()
    return source


@pytest.fixture(scope="module")
def first_read(ab, source):
    cache = ab.get_default_cache()
    result = source.read(cache=cache)
    return cache, result


def read_counts(result) -> Dict[str, int]:
    """Records PyAirbyte received per stream in one read (its progress tracker has no public accessor)."""
    return {stream: result._progress_tracker.stream_read_counts.get(stream, 0) for stream in STREAMS}  # noqa: SLF001


def truth(workspace) -> Dict[str, Set[Tuple]]:
    """Every stream's primary keys in the sandbox now."""
    return truth_keys(workspace)


def assert_cache_holds(cache, expected: Mapping[str, Set[Tuple]]) -> None:
    """Each stream's table has one row per primary key, and exactly the expected keys."""
    for stream in STREAMS:
        frame = cache[stream].to_pandas()
        keys = [tuple(row) for row in frame[PRIMARY_KEYS[stream]].itertuples(index=False, name=None)]
        assert len(keys) == len(set(keys)), f"{stream}: duplicate primary keys in the DuckDB table"
        assert len(frame) == len(expected[stream]), (stream, len(frame), len(expected[stream]))
        assert set(keys) == expected[stream], stream


def test_pyairbyte_loads_every_stream_of_the_sandbox_into_its_default_duckdb_cache(ab, source, sandbox, first_read):
    workspace, _ = sandbox
    cache, result = first_read

    assert source.get_available_streams() == list(STREAMS)
    assert Path(cache.db_path).is_file() and str(cache.db_path).startswith(os.environ["AIRBYTE_PROJECT_DIR"])
    expected = truth(workspace)
    assert read_counts(result) == {s: len(keys) for s, keys in expected.items()}
    assert_cache_holds(cache, expected)


def test_a_second_pyairbyte_read_uses_the_cached_state_and_rereads_full_refresh_streams(source, sandbox, first_read):
    workspace, server = sandbox
    cache, _ = first_read
    slugs = [r["slug"] for r in workspace.records("repositories") if r["mainbranch"]]
    workspace.add_pull_request(slugs[0])
    workspace.push_commits(slugs[1], 3)
    workspace.add_deployment(slugs[2], state="COMPLETED")
    workspace.update_repository(slugs[3])
    workspace.add_member()
    expected = truth(workspace)
    server.reset_requests()

    result = source.read(cache=cache)

    counts = read_counts(result)
    assert counts["workspace_users"] == len(expected["workspace_users"]) == 13  # not 0: read again in full
    assert 1 <= counts["pull_requests"] <= 2  # the new one (and none of the others)
    assert 3 <= counts["commits"] <= 4  # the 3 pushed (+ the new pull request's commit)
    assert 1 <= counts["repositories"] <= 3
    unfinished = sum(1 for d in workspace.records("deployments") if not d["state"].get("completed_on"))
    assert counts["deployments"] == 1 + unfinished  # the new one, and those still in progress
    assert counts["environments"] == len(expected["environments"])  # full refresh
    open_pipelines = {k for k, p in pipeline_truth(workspace)["pipelines"].items() if p["state"]["name"] != "COMPLETED"}
    assert counts["pipelines"] == len(open_pipelines)  # none new: only the open ones, read again
    assert_cache_holds(cache, expected)


ACCESS_TOKEN, CLIENT_ID, CLIENT_SECRET = "sbx-access-token-pyairbyte", "pyairbyte-consumer", "pyairbyte-consumer-secret"


@pytest.mark.parametrize("credentials", [
    {"auth_type": "access_token", "access_token": ACCESS_TOKEN},
    {"auth_type": "oauth2.0", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": "sbx-refresh-py"},
], ids=["access_token", "oauth_refresh_token"])
def test_pyairbyte_reads_with_an_access_token_and_with_oauth_refreshing_mid_stream(ab, credentials):
    from integration_tests.sandbox.oauth import TokenIssuer

    workspace = generate_workspace(seed=4, repositories=4, pull_requests=12, commits=20, deployments=4, members=3)
    issuer = TokenIssuer(CLIENT_ID, CLIENT_SECRET, refresh_tokens={"sbx-refresh-py"}, lifetime_requests=3)
    with SandboxServer(workspace, access_tokens=[ACCESS_TOKEN], oauth=issuer) as server:
        # one worker: a token that lasts 3 requests would otherwise be spent by the other workers before the retry
        config = {"workspace": workspace.slug, "credentials": credentials, "api_url": server.api_url, "num_workers": 1}
        source = ab.get_source("source-bitbucket", config=config, local_executable=str(CONNECTOR), install_if_missing=False)
        records = list(source.get_records("pull_requests"))
    assert sorted((r["repository_uuid"], r["id"]) for r in records) == sorted(truth(workspace)["pull_requests"])
    if credentials["auth_type"] == "oauth2.0":
        assert issuer.issued >= 2  # the first token expired after 3 requests and was refreshed on the 401
