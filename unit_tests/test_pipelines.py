"""The pipelines, pipeline_steps and environments streams against Bitbucket's traps (HTTP mocked):
``next`` dropping ``sort``, the newest-first stop, the open set read again until COMPLETED, the
Pipelines-off answers, the secret fields, and the one listing both pipeline streams share.

Facts: ``shared/docs/bitbucket-api-more-endpoints.md`` 2.3 to 2.5 and 3."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, quote, urlparse

import responses
from airbyte_cdk.models import FailureType, SyncMode

from unit_tests.conftest import API, WORKSPACE, final_state, repository, repository_url, run_read

LISTING = f"{API}/repositories/{WORKSPACE}"
REPO = repository(1)
PIPELINES = repository_url(REPO, "pipelines/")
SECRETS = ("sandbox-clear-secret-1", "registry-password-1", "registry-user-1", "ci@example.com", "script-token-1")


def pipeline(n: int, day: int, state: str = "COMPLETED", **extra: Any) -> Dict[str, Any]:
    """A pipeline as listed: uuid ``{p<n>}``, created on 2024-05-<day> (nanosecond fraction, ``Z``)."""
    body = {"type": "pipeline", "uuid": f"{{p{n}}}", "build_number": n, "created_on": f"2024-05-{day:02d}T10:00:00.123456789Z",
            "state": {"name": state, "type": f"pipeline_state_{state.lower()}"}}
    if state == "COMPLETED":
        body["completed_on"] = f"2024-05-{day:02d}T10:05:00.14397Z"
    return {**body, **extra}


def pipelines_page(values: List[Dict[str, Any]], page: int = 1, size: Optional[int] = None, next_url: Optional[str] = None,
                   pagelen: int = 100) -> Dict[str, Any]:
    body: Dict[str, Any] = {"page": page, "pagelen": pagelen, "values": values, "size": len(values) if size is None else size}
    if next_url:
        body["next"] = next_url
    return body


def on_page(n: int) -> list:
    """Match the request for page ``n`` of a page-number listing (page 1: no ``page`` parameter)."""
    def match(request):
        asked = parse_qs(urlparse(request.url).query).get("page", ["1"])
        return asked == [str(n)], f"page {asked} is not page {n}"
    return [match]


def query(url: str) -> Dict[str, List[str]]:
    return parse_qs(urlparse(url).query)


def stdout(output) -> str:
    return json.dumps([m.model_dump(mode="json") if hasattr(m, "model_dump") else str(m) for m in output._messages])


def listing(*repos) -> None:
    responses.get(LISTING, json={"values": list(repos), "pagelen": 100, "size": len(repos)})


@responses.activate
def test_next_drops_sort_so_the_next_page_is_built_on_our_own_url(config):
    listing(REPO)
    # Bitbucket's next link keeps only page and pagelen: following it would read page 2 oldest first.
    first = responses.get(PIPELINES, json=pipelines_page([pipeline(3, 3)], size=150, next_url=f"{PIPELINES}?page=2&pagelen=100"),
                          match=on_page(1))
    second = responses.get(PIPELINES, json=pipelines_page([pipeline(2, 2), pipeline(1, 1)], page=2, size=150), match=on_page(2))

    output = run_read(config, ["pipelines"])

    assert not output.errors
    assert query(first.calls[0].request.url) == {"pagelen": ["100"], "sort": ["-created_on"]}
    assert query(second.calls[0].request.url) == {"pagelen": ["100"], "sort": ["-created_on"], "page": ["2"]}
    assert [r.record.data["uuid"] for r in output.records] == ["{p3}", "{p2}", "{p1}"]
    assert (first.call_count, second.call_count) == (1, 1)  # 2 * 100 >= size: no third page


@responses.activate
def test_a_missing_next_link_still_reads_the_next_page_until_an_empty_one(config):
    listing(REPO)
    responses.get(PIPELINES, json={"page": 1, "pagelen": 100, "values": [pipeline(2, 2)]}, match=on_page(1))  # no next, no size
    responses.get(PIPELINES, json={"page": 2, "pagelen": 100, "values": [pipeline(1, 1)]}, match=on_page(2))
    empty = responses.get(PIPELINES, json={"page": 3, "pagelen": 100, "values": []}, match=on_page(3))

    output = run_read(config, ["pipelines"])

    assert [r.record.data["uuid"] for r in output.records] == ["{p2}", "{p1}"]
    assert empty.call_count == 1


@responses.activate
def test_an_unchanged_repository_costs_one_request_and_keeps_its_cursor(config):
    listing(REPO)
    first = responses.get(PIPELINES, json=pipelines_page([pipeline(9, 9), pipeline(8, 8)], size=900,
                                                         next_url=f"{PIPELINES}?page=2&pagelen=100"), match=on_page(1))
    state = {REPO["uuid"]: {"created_on": "2024-05-09T10:00:00.123456+00:00"}}

    output = run_read(config, ["pipelines"], SyncMode.incremental, state={"pipelines": state})

    assert not output.records
    assert len(responses.calls) == 2 and first.call_count == 1  # the repository listing and one page
    assert final_state(output, "pipelines") == state


@responses.activate
def test_new_pipelines_are_read_down_to_the_cursor_and_move_it(config):
    listing(REPO)
    responses.get(PIPELINES, json=pipelines_page([pipeline(11, 11), pipeline(10, 10)], size=300), match=on_page(1))
    responses.get(PIPELINES, json=pipelines_page([pipeline(9, 9), pipeline(8, 8)], page=2, size=300), match=on_page(2))
    state = {REPO["uuid"]: {"created_on": "2024-05-09T10:00:00.123456+00:00"}}

    output = run_read(config, ["pipelines"], SyncMode.incremental, state={"pipelines": state})

    assert [r.record.data["uuid"] for r in output.records] == ["{p11}", "{p10}"]
    assert len(responses.calls) == 3  # the page reaching the cursor is the last
    assert final_state(output, "pipelines") == {REPO["uuid"]: {"created_on": "2024-05-11T10:00:00.123456+00:00"}}


@responses.activate
def test_open_pipelines_are_read_again_by_uuid_until_completed(config):
    listing(REPO)
    responses.get(PIPELINES, json=pipelines_page([pipeline(12, 12, "IN_PROGRESS", stage={"name": "RUNNING"})]), match=on_page(1))
    halted = responses.get(repository_url(REPO, f"pipelines/{quote('{p5}', safe='')}"),
                           json=pipeline(5, 5, "IN_PROGRESS", stage={"name": "HALTED"}))
    done = responses.get(repository_url(REPO, f"pipelines/{quote('{p6}', safe='')}"), json=pipeline(6, 6, "COMPLETED"))
    state = {REPO["uuid"]: {"created_on": "2024-05-10T00:00:00.000000+00:00", "open": ["{p5}", "{p6}"]}}

    output = run_read(config, ["pipelines"], SyncMode.incremental, state={"pipelines": state})

    assert not output.errors
    assert (halted.call_count, done.call_count) == (1, 1)
    records = {r.record.data["uuid"]: r.record.data for r in output.records}
    assert set(records) == {"{p12}", "{p5}", "{p6}"}  # re-read ones come out although older than the cursor
    assert records["{p6}"]["completed_on"] == "2024-05-06T10:05:00.14397Z"
    assert final_state(output, "pipelines") == {
        REPO["uuid"]: {"created_on": "2024-05-12T10:00:00.123456+00:00", "open": ["{p12}", "{p5}"]},  # p6 left: COMPLETED
    }


@responses.activate
def test_a_full_refresh_ignores_the_open_set_of_a_state(config):
    listing(REPO)
    responses.get(PIPELINES, json=pipelines_page([pipeline(1, 1)]), match=on_page(1))

    output = run_read(config, ["pipelines"], SyncMode.full_refresh)

    assert [r.record.data["uuid"] for r in output.records] == ["{p1}"]
    assert len(responses.calls) == 2


@responses.activate
def test_pipelines_off_404_and_the_empty_answer_are_no_pipelines_without_a_warning(config):
    off, empty = repository(1), repository(2)
    listing(off, empty)
    responses.get(repository_url(off, "pipelines/"), status=404, json={"type": "error", "error": {"message": "Not found"}})
    responses.get(repository_url(empty, "pipelines/"), json={"page": 1, "values": [], "size": 0, "pagelen": 0})

    output = run_read(config, ["pipelines", "pipeline_steps"], SyncMode.incremental)

    assert not output.errors and not output.records
    assert not [m for m in output.logs if m.log.level.value in ("WARN", "ERROR")]
    infos = [m.log.message for m in output.logs if "Pipelines is off" in m.log.message]
    assert len(infos) == 1 and off["full_name"] in infos[0]  # one line: the steps stream reuses what pipelines read
    assert len([c for c in responses.calls if "/pipelines/" in c.request.url]) == 2


@responses.activate
def test_pipelines_pushed_onto_the_next_page_during_the_walk_come_once(config):
    listing(REPO)
    responses.get(PIPELINES, json=pipelines_page([pipeline(3, 3), pipeline(2, 2)], size=3, pagelen=2), match=on_page(1))
    # p4 arrived between the two requests: p2 slid onto page 2
    responses.get(PIPELINES, json=pipelines_page([pipeline(2, 2), pipeline(1, 1)], page=2, size=4, pagelen=2), match=on_page(2))

    output = run_read(config, ["pipelines"])

    assert not output.errors
    assert [r.record.data["uuid"] for r in output.records] == ["{p3}", "{p2}", "{p1}"]
    assert not [m for m in output.logs if "changed while it was read" in m.log.message]


@responses.activate
def test_a_listing_out_of_newest_first_order_fails_the_repository_instead_of_stopping_early(config):
    listing(REPO)
    responses.get(PIPELINES, json=pipelines_page([pipeline(1, 1), pipeline(2, 2)]), match=on_page(1))  # sort ignored

    output = run_read(config, ["pipelines"], SyncMode.incremental, expect_failure=True)

    [error] = [e.trace.error for e in output.errors if e.trace.error.stream_descriptor]
    assert "newest-first order" in error.message and REPO["full_name"] in error.message
    assert error.failure_type == FailureType.system_error


@responses.activate
def test_a_server_that_ignores_page_cannot_loop_the_walk(config):
    listing(REPO)
    same = responses.get(PIPELINES, json={"page": 1, "pagelen": 100, "values": [pipeline(2, 2), pipeline(1, 1)]})

    output = run_read(config, ["pipelines"], expect_failure=True)

    assert [e.trace.error for e in output.errors if e.trace.error.stream_descriptor]
    assert same.call_count <= 6  # three walks of at most two pages, then a clear failure


@responses.activate
def test_pipeline_variables_are_never_emitted_only_whether_there_were_any(config):
    listing(REPO)
    variables = [{"key": "DEPLOY_KEY", "value": "sandbox-clear-secret-1", "secured": False}]
    responses.get(PIPELINES, json=pipelines_page([pipeline(2, 2, variables=variables), pipeline(1, 1)]), match=on_page(1))

    output = run_read(config, ["pipelines"])

    records = {r.record.data["uuid"]: r.record.data for r in output.records}
    assert records["{p2}"]["has_variables"] is True and records["{p1}"]["has_variables"] is False
    assert all("variables" not in r for r in records.values())
    assert "sandbox-clear-secret-1" not in stdout(output)


def step(n: int, pipeline_n: int, state: str = "COMPLETED") -> Dict[str, Any]:
    """A step as Bitbucket sends it when ``fields=`` is ignored: with the registry credentials and commands."""
    body = {"type": "pipeline_step", "uuid": f"{{s{n}}}", "name": f"step {n}", "run_number": 1,
            "pipeline": {"type": "pipeline", "uuid": f"{{p{pipeline_n}}}"}, "state": {"name": state},
            "image": {"name": "atlassian/default-image:4", "username": "registry-user-1", "password": "registry-password-1",
                      "email": "ci@example.com"},
            "setup_commands": [{"name": "clone", "command": "git clone"}],
            "script_commands": [{"name": "deploy", "command": "curl -H 'Authorization: script-token-1' https://example.com"}],
            "teardown_commands": [], "build_seconds_used": 0}
    if state == "COMPLETED":
        body.update(started_on="2024-05-01T10:00:01.5Z", completed_on="2024-05-01T10:01:01Z", duration_in_seconds=60)
    else:
        body.update(started_on=None, completed_on=None, duration_in_seconds=None)
    return body


def steps_url(pipeline_n: int) -> str:
    return repository_url(REPO, f"pipelines/{quote(f'{{p{pipeline_n}}}', safe='')}/steps/")


@responses.activate
def test_steps_ask_only_for_the_fields_kept_and_never_emit_credentials_or_commands_even_when_sent(config):
    listing(REPO)
    responses.get(PIPELINES, json=pipelines_page([pipeline(1, 1)]), match=on_page(1))
    steps = responses.get(steps_url(1), json=pipelines_page([step(1, 1), step(2, 1, "PENDING")]))

    output = run_read(config, ["pipeline_steps"])

    assert not output.errors
    [fields] = query(steps.calls[0].request.url)["fields"]
    assert "values.image.name" in fields.split(",")
    assert not [f for f in fields.split(",") if "command" in f or f in ("values.image", "values.image.password")]
    records = [r.record.data for r in output.records]
    assert [r["uuid"] for r in records] == ["{s1}", "{s2}"]
    assert records[0]["image"] == {"name": "atlassian/default-image:4"}
    assert records[0]["pipeline_uuid"] == "{p1}" and records[0]["pipeline_created_on"] == "2024-05-01T10:00:00.123456789Z"
    assert records[1].get("started_on") is None and records[1].get("duration_in_seconds") is None
    text = stdout(output)
    assert not [secret for secret in SECRETS if secret in text]
    assert not [key for key in ("script_commands", "setup_commands", "teardown_commands", "password") if key in text]


@responses.activate
def test_both_pipeline_streams_share_one_listing_and_steps_follow_the_open_set(config):
    listing(REPO)
    pipelines = responses.get(PIPELINES, json=pipelines_page([pipeline(12, 12), pipeline(11, 11, "PENDING")]), match=on_page(1))
    halted = responses.get(repository_url(REPO, f"pipelines/{quote('{p5}', safe='')}"),
                           json=pipeline(5, 5, "IN_PROGRESS", stage={"name": "HALTED"}))
    for n in (12, 11, 5):
        responses.get(steps_url(n), json=pipelines_page([step(n, n)]))
    old = {REPO["uuid"]: {"created_on": "2024-05-10T00:00:00.000000+00:00", "open": ["{p5}"]}}
    state = {"pipelines": old,
             "pipeline_steps": {REPO["uuid"]: {"pipeline_created_on": "2024-05-10T00:00:00.000000+00:00", "open": ["{p5}"]}}}

    output = run_read(config, ["pipelines", "pipeline_steps"], SyncMode.incremental, state=state)

    assert not output.errors
    assert (pipelines.call_count, halted.call_count) == (1, 1)  # read for pipelines, reused by pipeline_steps
    assert sorted(r.record.data["uuid"] for r in output.records if r.record.stream == "pipeline_steps") == ["{s11}", "{s12}", "{s5}"]
    assert final_state(output, "pipeline_steps") == {
        REPO["uuid"]: {"pipeline_created_on": "2024-05-12T10:00:00.123456+00:00", "open": ["{p11}", "{p5}"]},
    }
    progress = [m.log.message for m in output.logs if "steps requests (one per pipeline)" in m.log.message]
    assert progress and "3 steps requests" in progress[-1]


@responses.activate
def test_steps_alone_read_a_trimmed_listing(config):
    listing(REPO)
    refs = responses.get(PIPELINES, json=pipelines_page([pipeline(1, 1)]), match=on_page(1))
    responses.get(steps_url(1), json=pipelines_page([step(1, 1)]))

    output = run_read(config, ["pipeline_steps"], SyncMode.incremental)

    assert not output.errors and len(output.records) == 1
    params = query(refs.calls[0].request.url)
    assert params["sort"] == ["-created_on"]
    assert set(params["fields"][0].split(",")) == {"values.uuid", "values.created_on", "values.state", "page", "pagelen", "size"}


@responses.activate
def test_environments_are_kept_as_they_come_per_repository(config):
    listing(REPO)
    environment = {"type": "deployment_environment", "uuid": "{e1}", "name": "Production", "slug": "production", "rank": 2,
                   "environment_type": {"type": "deployment_environment_type", "name": "Production", "rank": 2},
                   "category": {"name": "Production"}, "lock": {"type": "deployment_environment_lock_open", "name": "OPEN"},
                   "hidden": False, "deployment_gate_enabled": False}
    url = repository_url(REPO, "environments")
    responses.get(url, json={"page": 1, "pagelen": 100, "size": 1, "values": [environment]})

    output = run_read(config, ["environments"])

    [record] = [r.record.data for r in output.records]
    assert record == {**environment, "repository_uuid": REPO["uuid"], "repository_full_name": REPO["full_name"]}
    assert query(responses.calls[1].request.url) == {"pagelen": ["100"]}


@responses.activate
def test_a_pipeline_whose_steps_answer_404_stays_open_so_its_steps_are_asked_again(config):
    listing(REPO)
    responses.get(PIPELINES, json=pipelines_page([pipeline(2, 2), pipeline(1, 1)]), match=on_page(1))
    responses.get(steps_url(2), status=404, json={"type": "error", "error": {"message": "Not found"}})
    responses.get(steps_url(1), json=pipelines_page([step(1, 1)]))

    output = run_read(config, ["pipeline_steps"], SyncMode.incremental)

    assert not output.errors
    assert [r.record.data["uuid"] for r in output.records] == ["{s1}"]
    assert final_state(output, "pipeline_steps") == {
        REPO["uuid"]: {"pipeline_created_on": "2024-05-02T10:00:00.123456+00:00", "open": ["{p2}"]},  # COMPLETED, but unread
    }


@responses.activate
def test_an_unreadable_open_list_reads_the_repository_again_from_start_date_with_a_warning(config):
    listing(REPO)
    listed = responses.get(PIPELINES, json=pipelines_page([pipeline(2, 2), pipeline(1, 1)]), match=on_page(1))
    state = {REPO["uuid"]: {"created_on": "2024-05-09T00:00:00.000000+00:00", "open": "not-a-list"}}

    output = run_read(config, ["pipelines"], SyncMode.incremental, state={"pipelines": state})

    assert not output.errors
    assert [r.record.data["uuid"] for r in output.records] == ["{p2}", "{p1}"]  # older than the dropped cursor
    warnings = [m.log.message for m in output.logs if m.log.level.value == "WARN"]
    assert len(warnings) == 1 and REPO["uuid"] in warnings[0] and "not a list of pipeline uuids" in warnings[0]
    assert listed.call_count == 1
    assert final_state(output, "pipelines") == {REPO["uuid"]: {"created_on": "2024-05-02T10:00:00.123456+00:00"}}


@responses.activate
def test_an_open_pipeline_that_is_gone_leaves_the_open_set_with_one_info_line(config):
    listing(REPO)
    responses.get(PIPELINES, json=pipelines_page([pipeline(12, 12)]), match=on_page(1))
    responses.get(repository_url(REPO, f"pipelines/{quote('{p5}', safe='')}"), status=404,
                  json={"type": "error", "error": {"message": "Not found"}})
    state = {REPO["uuid"]: {"created_on": "2024-05-10T00:00:00.000000+00:00", "open": ["{p5}"]}}

    output = run_read(config, ["pipelines"], SyncMode.incremental, state={"pipelines": state})

    assert not output.errors and not [m for m in output.logs if m.log.level.value == "WARN"]
    assert [m.log.message for m in output.logs if "{p5}" in m.log.message and "no longer found" in m.log.message]
    assert final_state(output, "pipelines") == {REPO["uuid"]: {"created_on": "2024-05-12T10:00:00.123456+00:00"}}
