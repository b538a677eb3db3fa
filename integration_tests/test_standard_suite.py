"""Airbyte's standard connector tests (``airbyte_cdk.test.standard_tests``) against the local sandbox.

The scenarios come from ``acceptance-test-config.yml`` in the connector's root folder (where
airbyte-ci and the CDK look for it), the file the Connector Acceptance Tests read. In airbyte-ci,
``secrets/config.json`` is the config of a real workspace (never committed). Here, every
scenario of that config runs against the sandbox instead: the first time pytest asks for the
scenarios (at collection), a sandbox workspace is served on a free port of 127.0.0.1 for the rest
of the session, and its config is written to ``.tmp/standard-tests-*/sandbox_config.json`` (ignored
by git, one folder per pytest process, removed at exit). The standard tests read a scenario's config
file only when the test runs, so the file just has to exist by then. Other configs
(``integration_tests/invalid_config.json``) are used as they are.

Set ``SOURCE_BITBUCKET_STANDARD_TESTS_CONFIG=secrets/config.json`` (or another config path) to run
the same suite in-process against a real workspace instead of the sandbox.

The CDK 7.39.1 suite does not collect the ``incremental`` section, so the future-state read that
the Connector Acceptance Tests ran from it, and their two consecutive full-refresh reads, are
checked by the two tests at the end of this module, from the same file.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import pytest
import yaml
from airbyte_cdk.models import AirbyteStateMessageSerializer, ConfiguredAirbyteCatalogSerializer, SyncMode
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from boltons.typeutils import classproperty

from integration_tests.ground_truth import connector_key
from integration_tests.sandbox import SandboxServer, generate_workspace
from source_bitbucket import SourceBitbucket

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# airbyte-ci and the CDK look for acceptance-test-config.yml in the connector's root folder.
ACCEPTANCE_TEST_CONFIG = PROJECT_ROOT / "acceptance-test-config.yml"
WORKSPACE_CONFIG = Path("secrets/config.json")  # as written in acceptance-test-config.yml
CONFIG_ENV = "SOURCE_BITBUCKET_STANDARD_TESTS_CONFIG"
EMAIL, TOKEN = "dev@example.com", "sandbox-token-standard-tests-3e9a"

_sandbox: Dict[str, Any] = {}


def sandbox_config_path() -> Path:
    """Serve the sandbox workspace (once per process) and return the path of its config file."""
    if "config_path" not in _sandbox:
        workspace = generate_workspace(seed=1)
        server = SandboxServer(workspace, email=EMAIL, api_token=TOKEN).start()
        tmp_root = PROJECT_ROOT / ".tmp"
        tmp_root.mkdir(exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="standard-tests-", dir=tmp_root))
        config = {"workspace": workspace.slug, "email": EMAIL, "api_token": TOKEN, "api_url": server.api_url,
                  "start_date": "2020-01-01T00:00:00Z"}
        config_path = folder / "sandbox_config.json"
        config_path.write_text(json.dumps(config, indent=2))

        def _stop() -> None:
            server.stop()
            shutil.rmtree(folder, ignore_errors=True)

        atexit.register(_stop)
        _sandbox.update(workspace=workspace, server=server, config=config, config_path=config_path)
    return _sandbox["config_path"]


def acceptance_test_config() -> Dict[str, Any]:
    return yaml.safe_load(ACCEPTANCE_TEST_CONFIG.read_text())


def local_config_path(declared: str) -> Path:
    """Where a config the YAML declares is read from in this suite (the sandbox's, for the workspace config)."""
    override = os.environ.get(CONFIG_ENV)
    if Path(declared) == WORKSPACE_CONFIG:
        return PROJECT_ROOT / override if override else sandbox_config_path()
    return PROJECT_ROOT / declared


class TestSourceBitbucketStandard(SourceTestSuiteBase):
    """spec, check (valid and invalid config), discover, basic read, full refresh, bad catalog."""

    connector = SourceBitbucket
    connector_name = "source-bitbucket"

    @classmethod
    def get_connector_root_dir(cls) -> Path:
        # The CDK looks upward from this file for metadata.yaml / acceptance-test-config.yml: the root.
        return PROJECT_ROOT

    @classproperty
    def acceptance_test_config(cls) -> Any:  # noqa: N805 - boltons classproperty
        # The CDK reads only <root>/acceptance-test-config.yml.
        config = acceptance_test_config()
        assert "acceptance_tests" in config, f"{ACCEPTANCE_TEST_CONFIG} has no acceptance_tests"
        return config

    @classmethod
    def get_scenarios(cls) -> List[ConnectorTestScenario]:
        scenarios = super().get_scenarios()
        override = os.environ.get(CONFIG_ENV)
        result = []
        for scenario in scenarios:
            if scenario.config_path == WORKSPACE_CONFIG:
                if override:
                    scenario = scenario.model_copy(update={"config_path": Path(override)})
                else:
                    # The sandbox has records in every stream: read them all (the YAML's
                    # empty_streams are for real workspaces without Pipelines deployments).
                    scenario = scenario.model_copy(update={"config_path": sandbox_config_path(),
                                                           "empty_streams": None})
            result.append(scenario)
        return result


def test_the_standard_scenarios_are_the_sandbox_and_the_invalid_config():
    """Guards the wiring above: the suite must not silently run on fewer configs than the YAML lists."""
    if os.environ.get(CONFIG_ENV):
        pytest.skip(f"{CONFIG_ENV} is set")
    scenarios = {s.config_path: s for s in TestSourceBitbucketStandard.get_scenarios()}
    sandbox = scenarios[sandbox_config_path()]
    assert set(sandbox.sections) == {"connection", "discovery", "basic_read", "full_refresh"}
    assert sandbox.status == "succeed" and not sandbox.requires_creds and not sandbox.empty_streams
    assert sandbox.configured_catalog_path == Path("integration_tests/configured_catalog.json")
    invalid = scenarios[Path("integration_tests/invalid_config.json")]
    assert invalid.sections == ("connection",) and invalid.status == "failed"
    assert json.loads(sandbox_config_path().read_text())["api_url"].startswith("http://127.0.0.1:")


# ---------------------------------------------------------------------------------------------------
# What the Connector Acceptance Tests checked and the CDK 7.39.1 standard suite does not collect.


def _section(name: str) -> List[Mapping[str, Any]]:
    return acceptance_test_config()["acceptance_tests"][name]["tests"]


def _read(entry: Mapping[str, Any], sync_mode: SyncMode, state: Optional[List[Mapping[str, Any]]] = None):
    """``read`` (in-process, through the entrypoint) of an acceptance-test-config.yml entry, all in one sync mode."""
    config = json.loads(local_config_path(entry["config_path"]).read_text())
    catalog = json.loads((PROJECT_ROOT / entry["configured_catalog_path"]).read_text())
    for configured in catalog["streams"]:
        if sync_mode == SyncMode.full_refresh or SyncMode.incremental.value in configured["stream"]["supported_sync_modes"]:
            configured["sync_mode"] = sync_mode.value
        configured["destination_sync_mode"] = "append_dedup" if configured["sync_mode"] == "incremental" else "overwrite"
    messages = None if state is None else [AirbyteStateMessageSerializer.load(m) for m in state]
    output = read(SourceBitbucket(), config, ConfiguredAirbyteCatalogSerializer.load(catalog), messages)
    assert not output.errors, [e.trace.error.message for e in output.errors]
    return output


def _records(output) -> Dict[str, List[Mapping[str, Any]]]:
    by_stream: Dict[str, List[Mapping[str, Any]]] = {}
    for message in output.records:
        by_stream.setdefault(message.record.stream, []).append(message.record.data)
    return by_stream


@pytest.mark.parametrize("entry", _section("incremental"), ids=lambda e: Path(e["config_path"]).stem)
def test_incremental_read_with_a_future_state_emits_nothing_new(entry):
    """CAT's ``test_read_with_future_state``: a state in the year 2999 (abnormal_state.json) reads no
    record, except in the streams its ``missing_streams`` excuse (in-progress deployments)."""
    future = entry["future_state"]
    state = json.loads((PROJECT_ROOT / future["future_state_path"]).read_text())
    excused = {s["name"] for s in future.get("missing_streams") or []}

    output = _read(entry, SyncMode.incremental, state)

    records = _records(output)
    catalog = json.loads((PROJECT_ROOT / entry["configured_catalog_path"]).read_text())
    full_refresh_only = {c["stream"]["name"] for c in catalog["streams"]
                         if "incremental" not in c["stream"]["supported_sync_modes"]}
    assert {s: len(r) for s, r in records.items() if s not in excused | full_refresh_only} == {}
    for deployment in records.get("deployments", []):
        assert not deployment.get("completed_on"), "only unfinished deployments may come again"
    states = {m.state.stream.stream_descriptor.name for m in output.state_messages}
    assert states >= {s["stream"]["stream_descriptor"]["name"] for s in state}


def _key(stream: str, record: Mapping[str, Any]) -> Tuple:
    return connector_key(stream, record)


@pytest.mark.parametrize("entry", _section("full_refresh"), ids=lambda e: Path(e["config_path"]).stem)
def test_two_consecutive_full_refresh_reads_emit_the_same_records(entry):
    """CAT's full-refresh ``test_sequential_reads``: nothing changed, so the second read equals the first."""
    first = _records(_read(entry, SyncMode.full_refresh))
    second = _records(_read(entry, SyncMode.full_refresh))

    assert first.keys() == second.keys() and first
    for stream in first:
        first_by_key = {_key(stream, r): r for r in first[stream]}
        second_by_key = {_key(stream, r): r for r in second[stream]}
        assert len(first_by_key) == len(first[stream]), f"{stream}: duplicate primary keys"
        assert first_by_key == second_by_key, stream
