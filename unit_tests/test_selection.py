"""The repository selection: globs, projects, forks and the partition's buckets."""

from __future__ import annotations

import uuid as uuidlib
from datetime import datetime, timezone

import pytest
import responses
from airbyte_cdk.models import SyncMode

from source_bitbucket.config import BitbucketConfig, ConfigError
from source_bitbucket.selection import Partition, RepositorySelection, bucket
from unit_tests.conftest import API, WORKSPACE, page, repository, run_read

NOW = datetime(2026, 12, 3, tzinfo=timezone.utc)
LISTING = f"{API}/repositories/{WORKSPACE}"


def repo(slug, project="PLAT", fork=False, uuid=None):
    return {"uuid": uuid or f"{{{uuidlib.uuid5(uuidlib.NAMESPACE_DNS, slug)}}}", "slug": slug,
            "project": {"key": project}, "parent": {"uuid": "{p}"} if fork else None}


def test_globs_exclusions_projects_and_forks():
    selection = RepositorySelection(included=("data-*", "API-gateway"), excluded=("*-old",), projects=("PLAT",), skip_forks=True)
    assert selection.keeps(repo("data-lake")) and selection.keeps(repo("api-gateway"))  # case does not matter
    assert not selection.keeps(repo("web"))  # not included
    assert not selection.keeps(repo("data-lake-old"))  # excluded wins
    assert not selection.keeps(repo("data-x", project="WEB"))  # another project
    assert not selection.keeps(repo("data-fork", fork=True))
    assert selection.bbql() == 'project.key="PLAT"'
    assert RepositorySelection().everything and RepositorySelection().keeps(repo("anything", fork=True))


def test_the_buckets_cover_every_repository_exactly_once_and_adding_one_moves_no_other():
    uuids = [f"{{{uuidlib.uuid4()}}}" for _ in range(500)]
    for count in (2, 3, 7):
        buckets = [[u for u in uuids if RepositorySelection(partition=Partition(i, count)).keeps(repo("r", uuid=u))]
                   for i in range(count)]
        assert sorted(u for b in buckets for u in b) == sorted(uuids)  # each exactly once
        assert all(len(b) > 500 / count / 2 for b in buckets)  # and spread out
    before = {u: bucket(u, 5) for u in uuids}
    after = {u: bucket(u, 5) for u in uuids + [f"{{{uuidlib.uuid4()}}}"]}
    assert all(after[u] == before[u] for u in uuids)
    assert bucket("{ABCDEF01-0000-0000-0000-000000000000}", 9) == bucket("abcdef01-0000-0000-0000-000000000000", 9)


@pytest.mark.parametrize("value,expected", [
    ("ALL", ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")),
    ("MERGED", ("MERGED",)),
    (["MERGED", "OPEN"], ("OPEN", "MERGED")),
    (["OPEN", "ALL"], ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")),
])
def test_pull_request_state_takes_one_state_all_or_a_list(value, expected):
    config = BitbucketConfig.from_mapping({"workspace": "a", "email": "a@b.co", "api_token": "t", "pull_request_state": value}, now=NOW)
    assert config.pull_request_states == expected


@pytest.mark.parametrize("field,value", [
    ("pull_request_state", []), ("pull_request_state", ["open"]), ("repositories", "data-*"),
    ("repositories", ["data lake"]), ("projects", ['PLAT" OR x="y']), ("skip_forks", "yes"),
    ("partition", {"index": 3, "count": 3}), ("partition", {"index": -1, "count": 2}), ("partition", {"count": 2}),
    ("partition", {"index": 0, "count": 101}), ("partition", [0, 2]),
])
def test_bad_selection_fields_are_config_errors_naming_the_field(field, value):
    with pytest.raises(ConfigError) as error:
        BitbucketConfig.from_mapping({"workspace": "a", "email": "a@b.co", "api_token": "t", field: value}, now=NOW)
    assert error.value.field == field


@responses.activate
def test_the_listing_asks_bitbucket_for_the_projects_and_filters_the_rest(config):
    kept, other = repository(1), repository(2)
    kept["project"] = other["project"] = {"key": "PLAT"}
    responses.get(LISTING, json=page([kept, other]))
    responses.get(f"{LISTING}/{kept['uuid']}/deployments".replace("{", "%7B").replace("}", "%7D"), json=page([]))

    output = run_read({**config, "projects": ["PLAT"], "excluded_repositories": ["repo-2"]}, ["repositories", "deployments"])

    assert [r.record.data["uuid"] for r in output.records if r.record.stream == "repositories"] == [kept["uuid"]]
    assert responses.calls[0].request.params["q"] == 'project.key="PLAT"'
    assert not any(other["uuid"].strip("{}") in c.request.url for c in responses.calls)  # nothing read for it


@responses.activate
def test_an_incremental_listing_combines_the_projects_with_the_cursor(config):
    responses.get(LISTING, json=page([]))
    run_read({**config, "projects": ["PLAT", "DATA"]}, ["repositories"], SyncMode.incremental)
    assert responses.calls[0].request.params["q"] == '(project.key="PLAT" OR project.key="DATA") AND updated_on>2021-01-01T00:00:00.000000+00:00'


@responses.activate
def test_workspace_level_streams_are_read_by_partition_0_only(config):
    responses.get(f"{API}/workspaces/{WORKSPACE}/members", json=page([{"user": {"uuid": "{u1}"}}]))
    first = run_read({**config, "partition": {"index": 0, "count": 2}}, ["workspace_users"])
    second = run_read({**config, "partition": {"index": 1, "count": 2}}, ["workspace_users"])
    assert len(first.records) == 1 and second.records == [] and len(responses.calls) == 1
    assert any("read by partition 0 only" in m.log.message for m in second.logs)


@responses.activate
def test_a_read_logs_a_request_estimate_once_the_listing_is_read(config):
    repos = [repository(1), repository(2)]
    responses.get(LISTING, json=page(repos))
    for r in repos:
        responses.get(f"{LISTING}/{r['uuid']}/deployments".replace("{", "%7B").replace("}", "%7D"), json=page([]))
    responses.get(f"{API}/workspaces/{WORKSPACE}/members", json=page([]))

    output = run_read(config, ["repositories", "deployments", "workspace_users"])

    [estimate] = [m.log.message for m in output.logs if m.log.message.startswith("request estimate")]
    assert estimate == ("request estimate: 2 repositories x 1 repository-scoped streams + 1 workspace-level: "
                        "at least 3 requests; limit 1,000/hour: minutes.")


def test_the_estimate_names_the_per_pull_request_cost_and_the_scaled_limit_of_access_tokens():
    from source_bitbucket.rate_limit import estimate_message

    message = estimate_message(3000, ["pull_requests", "commits"], ["pull_request_comments", "pull_request_diffstat"],
                               [], "access_token")
    assert "at least 6,000 requests, plus about 3 per pull request updated" in message
    assert "scaled limit" in message and "at least 6.0 hours" in message
