"""Bad input through the command line: bad configs, secrets in failing runs, unexpected payloads.

* Every bad config is refused by ``check`` (CONNECTION_STATUS FAILED naming the field) and by ``read``
  (non-zero exit, a config_error TRACE naming the field) before a single request is sent.
* A distinctive API token, and the base64 form of it that travels in the Authorization header,
  never appear on stdout or stderr of failing checks and syncs (401, 403, 500 until the waiting
  budget is spent, a foreign next link, an invalid start_date).
* Pages without ``values`` or with items that are not objects do not crash the sync. The sandbox has
  no fault kind for these payloads, so the tests wrap the sandbox's API router in the test process.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple
from urllib.parse import quote

import pytest

from integration_tests import connector_cli as cli
from integration_tests.ground_truth import keys, truth_keys
from integration_tests.sandbox import SandboxServer, generate_workspace

EMAIL = "dev@example.com"
TOKEN = "ATATT3xFfGF0-bad-input-9Qz7Kp2LwV5sN8"  # distinctive: searched for in every output
NOW = (datetime.now(timezone.utc) - timedelta(days=3)).replace(microsecond=0).isoformat()
WORKERS = 3


def small_workspace():
    return generate_workspace(seed=2, repositories=3, pull_requests=40, commits=80, deployments=6, members=3, now=NOW)


def paged_workspace():
    """4 repositories (one empty); the busiest has 81 pull requests (2 pages)."""
    return generate_workspace(seed=2, repositories=4, pull_requests=120, commits=260, deployments=12, members=4, now=NOW)


def good_config(server: SandboxServer, workspace) -> Dict[str, Any]:
    return {"workspace": workspace.slug, "email": EMAIL, "api_token": TOKEN, "api_url": server.api_url,
            "start_date": "2020-01-01T00:00:00Z", "max_waiting_time": 0.5}


def run_cli(command: str, conf: Mapping[str, Any], catalog: Optional[Mapping[str, Any]] = None,
            state=None, extra_args: Sequence[str] = ()) -> cli.SyncResult:
    """``connector_cli.run`` plus extra command-line arguments (e.g. ``--debug``)."""
    if not extra_args:
        return cli.run(command, conf, catalog, state=state, timeout=240)
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, str(cli.PROJECT_ROOT / "main.py"), command, "--config", _write(tmp, "config", conf)]
        if catalog is not None:
            args += ["--catalog", _write(tmp, "catalog", catalog)]
        completed = subprocess.run(args + list(extra_args), capture_output=True, text=True, timeout=240, cwd=cli.PROJECT_ROOT)
    return cli.parse(completed.stdout, completed.returncode, completed.stderr)


def _write(folder: str, name: str, content: Any) -> str:
    path = Path(folder) / f"{name}.json"
    path.write_text(json.dumps(content))
    return str(path)


def connection_status(result: cli.SyncResult) -> Mapping[str, Any]:
    statuses = [m["connectionStatus"] for m in result.other if m.get("type") == "CONNECTION_STATUS"]
    assert len(statuses) == 1, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    return statuses[0]


def selected(request, param: str) -> Set[str]:
    """The ids of ``param`` used by the tests of this module that were collected."""
    return {item.callspec.id for item in request.session.items
            if item.module is request.module and hasattr(item, "callspec") and param in item.callspec.params}


def run_selected(request, param: str, cases: Sequence[Any], run: Callable[[Any], Any]) -> Iterator[Dict[str, Future]]:
    """Run ``run`` on the ``cases`` (objects with an ``id``) selected for ``param``, at once, each with its own
    sandbox; yield ``{id: Future}`` for a module-scoped fixture."""
    wanted = selected(request, param)
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    yield {case.id: pool.submit(run, case) for case in cases if case.id in wanted}
    pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- bad configs
@dataclass
class BadConfig:
    id: str
    field: str
    change: Callable[[Dict[str, Any], SandboxServer], None]


def _set(key: str, value: Any) -> Callable[[Dict[str, Any], SandboxServer], None]:
    def change(conf: Dict[str, Any], server: SandboxServer) -> None:
        conf[key] = value
    return change


def _drop(key: str) -> Callable[[Dict[str, Any], SandboxServer], None]:
    return lambda conf, server: conf.pop(key)


BAD_CONFIGS = [
    BadConfig("workspace_missing", "workspace", _drop("workspace")),
    BadConfig("workspace_as_url", "workspace", _set("workspace", "https://bitbucket.org/acme-sandbox/")),
    BadConfig("email_not_an_email", "email", _set("email", "dev-at-example.com")),
    BadConfig("api_token_empty", "api_token", _set("api_token", "")),
    BadConfig("api_token_whitespace", "api_token", _set("api_token", "   ")),
    BadConfig("start_date_unparsable", "start_date", _set("start_date", "last tuesday")),
    BadConfig("start_date_in_the_future", "start_date", _set("start_date", "2999-01-01T00:00:00Z")),
    # valid ISO 8601, but year 0 / year 10000 once converted to UTC (an OverflowError crash before)
    BadConfig("start_date_before_year_1_in_utc", "start_date", _set("start_date", "0001-01-01T00:00:00+01:00")),
    BadConfig("start_date_after_year_9999_in_utc", "start_date", _set("start_date", "9999-12-31T23:59:59-01:00")),
    BadConfig("pull_request_state_unknown", "pull_request_state", _set("pull_request_state", "MERGING")),
    # 0.0.0.0 is not loopback, yet reaches this host: if it were accepted the sandbox would see requests.
    BadConfig("api_url_plain_http_to_a_non_loopback_host", "api_url",
              lambda conf, server: conf.update(api_url=f"http://0.0.0.0:{server.port}/2.0")),
    BadConfig("max_waiting_time_zero", "max_waiting_time", _set("max_waiting_time", 0)),
    BadConfig("max_waiting_time_a_string", "max_waiting_time", _set("max_waiting_time", "30")),
]


@dataclass
class Refusal:
    check: cli.SyncResult
    discover: cli.SyncResult
    read: cli.SyncResult
    check_requests: List[Any]
    discover_requests: List[Any]
    read_requests: List[Any]


def refuse(bad: BadConfig) -> Refusal:
    workspace = small_workspace()
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        conf = good_config(server, workspace)
        bad.change(conf, server)
        check = cli.run("check", conf, timeout=120)
        check_requests = server.requests
        server.reset_requests()
        discover = cli.run("discover", conf, timeout=120)
        discover_requests = server.requests
        server.reset_requests()
        read = cli.run("read", conf, cli.catalog(), timeout=120)
        return Refusal(check, discover, read, check_requests, discover_requests, server.requests)


@pytest.fixture(scope="module")
def refusals(request) -> Iterator[Dict[str, Future]]:
    yield from run_selected(request, "bad", BAD_CONFIGS, refuse)


@pytest.mark.parametrize("bad", [pytest.param(b, id=b.id) for b in BAD_CONFIGS])
def test_check_refuses_a_bad_config_naming_the_field_without_a_request(bad: BadConfig, refusals) -> None:
    refusal = refusals[bad.id].result(timeout=280)
    assert refusal.check_requests == [], "check sent requests with a bad config"
    status = connection_status(refusal.check)
    assert status["status"] == "FAILED"
    assert refusal.check.returncode == 0  # a failed check is an answer, not a crash
    assert_no_secret_in(refusal.check)
    assert bad.field in (status.get("message") or ""), status.get("message")


@pytest.mark.parametrize("bad", BAD_CONFIGS, ids=[b.id for b in BAD_CONFIGS])
def test_read_refuses_a_bad_config_with_a_config_error_naming_the_field_without_a_request(bad: BadConfig, refusals) -> None:
    refusal = refusals[bad.id].result(timeout=280)
    read = refusal.read
    assert refusal.read_requests == [], "read sent requests with a bad config"
    assert read.returncode != 0
    assert not read.records and not read.states
    assert_a_clean_config_error_naming(read, bad.field)


@pytest.mark.parametrize("bad", BAD_CONFIGS, ids=[b.id for b in BAD_CONFIGS])
def test_discover_refuses_a_bad_config_with_a_config_error_naming_the_field_without_a_request(bad: BadConfig, refusals) -> None:
    refusal = refusals[bad.id].result(timeout=280)
    discover = refusal.discover
    assert refusal.discover_requests == [], "discover sent requests with a bad config"
    assert discover.returncode != 0
    assert not [m for m in discover.other if m.get("type") == "CATALOG"]
    assert_a_clean_config_error_naming(discover, bad.field)


def assert_a_clean_config_error_naming(result: cli.SyncResult, field: str) -> None:
    """A config_error TRACE naming ``field``, no stack trace anywhere, no secret."""
    config_errors = [e for e in result.errors if e.get("failure_type") == "config_error"]
    assert any(field in (e.get("message") or "") for e in config_errors), [e.get("message") for e in result.errors]
    assert "Traceback" not in result.stdout + result.stderr  # one TRACE message, no stack trace logged
    assert_no_secret_in(result)


def assert_no_secret_in(result: cli.SyncResult) -> None:
    for where, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        for name, value in secret_forms().items():
            assert value not in text, f"the {name} appears on {where}"


# ----------------------------------------------------------------------------- secrets
def secret_forms(email: str = EMAIL, token: str = TOKEN) -> Dict[str, str]:
    basic = base64.b64encode(f"{email}:{token}".encode()).decode()
    return {
        "token": token,
        "Authorization header value": basic,
        "Authorization header value without padding": basic.rstrip("="),
        "token in base64": base64.b64encode(token.encode()).decode().rstrip("="),
    }


@dataclass
class FailingRun:
    id: str
    command: str
    arm: Callable[[SandboxServer, Any], None] = lambda server, workspace: None
    change: Callable[[Dict[str, Any]], None] = lambda conf: None
    server_token: str = TOKEN  # what the sandbox accepts
    extra_args: Tuple[str, ...] = ()


def _fault(kind: str, where: Callable[[Any], str], times: Optional[int] = None, **options: Any):
    return lambda server, workspace: server.add_fault(kind, where(workspace), times, **options)


def _path_of_the_repository_with_most_deployments(workspace, resource: str) -> str:
    repo = max(workspace.repositories, key=lambda r: len(r.deployments))
    return f"{quote(repo.uuid, safe='')}/{resource}"


FAILING_RUNS = [
    FailingRun("401_check", "check", server_token="another-token"),
    FailingRun("401_read", "read", server_token="another-token"),
    FailingRun("403_on_members_and_one_repository_read", "read",
               arm=lambda s, w: (s.add_fault("403_scope", "/members", None),
                                 s.add_fault("403", _path_of_the_repository_with_most_deployments(w, "deployments"), None))),
    FailingRun("500_until_the_budget_is_spent_read", "read", arm=_fault("500", lambda w: "/pullrequests"),
               change=lambda conf: conf.update(max_waiting_time=0.03)),
    FailingRun("500_check", "check", arm=_fault("500", lambda w: "/repositories/")),
    FailingRun("foreign_next_link_read", "read", arm=_fault("foreign_next", lambda w: "/pullrequests", 1)),
]
DEBUG_RUN = FailingRun("401_read_with_debug_logging", "read", server_token="another-token", extra_args=("--debug",))


@dataclass
class Played:
    result: cli.SyncResult
    requests: List[Any]
    authorized: int  # requests that carried an Authorization header value


def play_failing(run: FailingRun) -> Played:
    workspace = small_workspace()
    with SandboxServer(workspace, email=EMAIL, api_token=run.server_token) as server:
        seen: List[str] = []
        answer = server.answer_api

        def spy(method, path, query, body, headers):
            seen.append(headers.get("Authorization") or "")
            return answer(method, path, query, body, headers)

        server.answer_api = spy
        conf = good_config(server, workspace)
        run.change(conf)
        run.arm(server, workspace)
        catalog = cli.catalog() if run.command == "read" else None
        result = run_cli(run.command, conf, catalog, extra_args=run.extra_args)
        return Played(result, server.requests, sum(1 for h in seen if h))


@pytest.fixture(scope="module")
def failing_runs(request) -> Iterator[Dict[str, Future]]:
    yield from run_selected(request, "run", FAILING_RUNS + [DEBUG_RUN], play_failing)


def _assert_no_secret(played: Played, run: FailingRun) -> None:
    result = played.result
    if run.command == "check":
        assert connection_status(result)["status"] == "FAILED"
    else:
        assert result.returncode != 0 and result.errors, "the run was expected to fail"
    assert played.authorized > 0, "no request carried the credentials: the search proves nothing"
    assert_no_secret_in(result)
    # the same, message by message (records, states, logs, traces), decoded
    for message in result.logs + result.traces + result.states + [r for rs in result.records.values() for r in rs]:
        dumped = json.dumps(message)
        for name, value in secret_forms().items():
            assert value not in dumped, f"the {name} appears in {dumped[:200]}"


@pytest.mark.parametrize("run", FAILING_RUNS, ids=[r.id for r in FAILING_RUNS])
def test_the_api_token_never_appears_in_the_output_of_a_failing_run(run: FailingRun, failing_runs) -> None:
    played = failing_runs[run.id].result(timeout=280)
    _assert_no_secret(played, run)
    if run.id.startswith("500_until"):
        assert any("before retry" in log["message"] for log in played.result.logs), "the budget was not spent retrying"


@pytest.mark.parametrize("run", [pytest.param(DEBUG_RUN, id=DEBUG_RUN.id)])
def test_the_api_token_never_appears_even_with_debug_logging(run: FailingRun, failing_runs) -> None:
    played = failing_runs[run.id].result(timeout=280)
    _assert_no_secret(played, run)


# ----------------------------------------------------------------------------- unexpected payloads






def tamper(server: SandboxServer, applies: Callable[[str, Dict[str, str]], bool], edit: Callable[[dict], None],
           times: int = 1) -> Dict[str, int]:
    """Edit the JSON body of the next ``times`` successful answers to requests for which
    ``applies(path, query)`` holds (a test-local stand-in for a sandbox fault kind)."""
    handle = server.api.handle
    done = {"count": 0}

    def tampered(req):
        resp = handle(req)
        query = dict(req.pairs)
        if done["count"] < times and resp.status == 200 and applies(req.path, query):
            body = json.loads(resp.body)
            edit(body)
            resp.body = json.dumps(body).encode()
            done["count"] += 1
        return resp

    server.api.handle = tampered
    return done


def _busiest(workspace):
    return max(workspace.repositories, key=lambda r: len(r.pull_requests))


def _single_page(workspace):
    """A repository whose pull requests fit on one page."""
    return max((r for r in workspace.repositories if 0 < len(r.pull_requests) <= 50), key=lambda r: len(r.pull_requests))


def _pr_page(workspace, page: Optional[str], repo=None) -> Callable[[str, Dict[str, str]], bool]:
    target = repo or _busiest(workspace)
    return lambda path, query: path.endswith(f"/{quote(target.uuid, safe='')}/pullrequests") and query.get("page") == page


@pytest.mark.parametrize("edits,retried_pages", [
    pytest.param({
        "busiest": lambda body: body["values"].extend([None, 42, "x", [], True]),  # items that are not objects
        "single_page": lambda body: body.pop("values"),  # a whole page without values
        "other": lambda body: body.update(values={"id": 1}),  # values that is not a list
    }, 2, id="items_not_objects_and_pages_without_a_values_list"),
    pytest.param({"busiest": lambda body: body.pop("values")}, 1, id="a_first_page_without_values_but_with_a_next_link"),
])
def test_unexpected_pages_do_not_crash_the_sync_and_the_next_sync_loses_nothing(edits, retried_pages) -> None:
    """The first pull request page of some repositories is altered once; the sync goes on, and the
    next sync (with its state) emits whatever the altered pages hid."""
    workspace = paged_workspace()
    busiest = _busiest(workspace)
    small = sorted((r for r in workspace.repositories if r is not busiest and r.pull_requests), key=lambda r: len(r.pull_requests))
    assert len(busiest.pull_requests) > 50 and len(small) >= 2
    targets = {"busiest": busiest, "single_page": small[-1], "other": small[0]}
    truth = truth_keys(workspace)
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        conf = good_config(server, workspace)
        done = [tamper(server, _pr_page(workspace, None, targets[role]), edit) for role, edit in edits.items()]
        first = cli.run("read", conf, cli.catalog(), timeout=120)
        assert all(d["count"] == 1 for d in done), "a page was never altered: the test proves nothing"
        assert first.returncode == 0, first.errors
        assert "Traceback" not in first.stderr + first.stdout
        for stream in cli.STREAMS:
            got = keys(first, stream)
            assert len(got) == len(set(got)) and set(got) <= truth[stream], stream
            if stream != "pull_requests":
                assert set(got) == truth[stream], stream
        # a page that is not a list page (no 'values', or 'values' not a list) is retried, never skipped
        retried = [log["message"] for log in first.logs if "not a JSON page with 'values'" in log["message"]]
        assert len(retried) == retried_pages, retried
        assert set(keys(first, "pull_requests")) == truth["pull_requests"]
        second = cli.run("read", conf, cli.catalog(), state=first.final_state(), timeout=120)
        assert second.returncode == 0, second.errors
    union = set(keys(first, "pull_requests")) | set(keys(second, "pull_requests"))
    assert union == truth["pull_requests"], sorted(truth["pull_requests"] - union)[:5]


# ----------------------------------------------------------------------------- bad config, state and catalog files
def _stream_entry(name: str, stream_state: Any, **extra: Any) -> Dict[str, Any]:
    return {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": stream_state}, **extra}


_CURSOR = {"updated_on": "2024-01-01T00:00:00.000000+00:00"}
_UNKNOWN_STREAM = {"stream": {"name": "issues", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                   "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}


@dataclass
class BadFile:
    id: str
    option: str  # --config, --state or --catalog
    content: Optional[str]  # the file's text; None: the path does not exist
    expected: str  # in the error message


BAD_FILES = [
    BadFile("state_an_object_instead_of_a_list", "--state", json.dumps({"repositories": _CURSOR}), "holds a JSON object"),
    BadFile("state_empty_file", "--state", "", "is empty"),
    BadFile("state_invalid_json", "--state", '[{"type": "STREAM", "stream": ', "is not valid JSON"),
    BadFile("state_stream_state_a_string", "--state", json.dumps([_stream_entry("commits", "2024-01-01")]),
            "stream_state for stream 'commits' that is a JSON string"),
    BadFile("state_stream_state_a_list", "--state", json.dumps([_stream_entry("repositories", [_CURSOR])]),
            "stream_state for stream 'repositories' that is a JSON list"),
    BadFile("state_global", "--state", json.dumps([{"type": "GLOBAL", "global": {
        "shared_state": {"x": 1}, "stream_states": [{"stream_descriptor": {"name": "commits"}, "stream_state": {}}]}}]), "GLOBAL state"),
    BadFile("state_entry_without_a_stream_descriptor", "--state",
            json.dumps([{"type": "STREAM", "stream": {"stream_state": _CURSOR}}]), "without a stream descriptor"),
    BadFile("state_whole_state_output_lines", "--state", json.dumps([{"type": "STATE", "state": _stream_entry("repositories", _CURSOR)}]),
            "whole STATE output line"),
    BadFile("state_file_missing", "--state", None, "cannot be read"),
    BadFile("state_nested_too_deeply", "--state", "[" + '{"a":' * 5000 + "1" + "}" * 5000 + "]", "is nested too deeply"),
    BadFile("config_file_missing", "--config", None, "cannot be read"),
    BadFile("config_empty_file", "--config", "", "is empty"),
    BadFile("config_invalid_json_holding_the_token", "--config", f'{{"workspace": "acme", "api_token": "{TOKEN}",', "is not valid JSON"),
    BadFile("config_a_list", "--config", json.dumps([{"workspace": "acme"}]), "holds a JSON list, not an object"),
    BadFile("catalog_naming_an_unknown_stream", "--catalog", json.dumps({"streams": cli.catalog()["streams"] + [_UNKNOWN_STREAM]}),
            "names a stream this source does not have: 'issues'. "
            f"Its streams are: {', '.join(cli.stream_names())}."),
    BadFile("catalog_not_json", "--catalog", "streams: [repositories]", "is not valid JSON"),
    BadFile("catalog_empty_file", "--catalog", "", "is empty"),
    BadFile("catalog_a_list", "--catalog", json.dumps(cli.catalog()["streams"]), "holds a JSON list"),
    BadFile("catalog_without_streams", "--catalog", json.dumps({"stream": cli.catalog()["streams"]}), "has no \"streams\" list"),
    BadFile("catalog_bad_sync_mode", "--catalog", json.dumps({"streams": [dict(cli.catalog()["streams"][0], sync_mode="INVALID")]}),
            "sync_mode \"INVALID\""),
]
FIXES = {"--config": "write it as a json object",
         "--state": "delete the file to re-sync every stream from start_date",
         "--catalog": "refresh the source schema"}


def refuse_file(bad: BadFile) -> Tuple[cli.SyncResult, List[Any], str]:
    """``main.py read`` with the bad file (and good other files); returns the output, the requests
    the sandbox saw and the bad file's path."""
    workspace = small_workspace()
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server, tempfile.TemporaryDirectory() as tmp:
        paths = {"--config": _write(tmp, "config", good_config(server, workspace)), "--catalog": _write(tmp, "catalog", cli.catalog())}
        paths[bad.option] = str(Path(tmp) / f"bad{bad.option.replace('-', '_')}.json")
        if bad.content is not None:
            Path(paths[bad.option]).write_text(bad.content)
        args = [sys.executable, str(cli.PROJECT_ROOT / "main.py"), "read"]
        for option, path in paths.items():
            args += [option, path]
        completed = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cli.PROJECT_ROOT)
        return cli.parse(completed.stdout, completed.returncode, completed.stderr), server.requests, paths[bad.option]


@pytest.fixture(scope="module")
def refused_files(request) -> Iterator[Dict[str, Future]]:
    yield from run_selected(request, "bad_file", BAD_FILES, refuse_file)


@pytest.mark.parametrize("bad_file", BAD_FILES, ids=[b.id for b in BAD_FILES])
def test_read_refuses_a_bad_config_state_or_catalog_file_with_one_config_error_naming_it_without_a_request(bad_file: BadFile, refused_files) -> None:
    result, requests, path = refused_files[bad_file.id].result(timeout=280)
    assert requests == [], "read sent requests with a bad input file"
    assert result.returncode == 1
    assert not result.records and not result.states
    assert len(result.traces) == 1, result.traces  # one error, no stream statuses
    [error] = result.errors
    assert error["failure_type"] == "config_error"
    message = error["message"]
    assert message.startswith(f"The {bad_file.option} file '{path}' "), message
    assert bad_file.expected in message, message
    assert FIXES[bad_file.option] in message.lower(), message
    assert not error.get("stack_trace")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip() == ""
    assert not [log for log in result.logs if log["level"] not in ("INFO", "DEBUG")], result.logs
    assert_no_secret_in(result)


def test_every_state_shape_the_cdk_accepts_still_resumes_the_sync() -> None:
    """``[]``; per-stream entries with ``stream_state`` null or {}; an entry without ``type``; a LEGACY
    entry: the sync with them reads what the sync with the equivalent canonical state reads."""
    workspace = small_workspace()
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        conf = good_config(server, workspace)
        first = cli.run("read", conf, cli.catalog(), timeout=120)
        assert first.returncode == 0, first.errors
        latest = {s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"] for s in first.final_state()}
        assert latest["pull_requests"] and latest["deployments"]
        untyped = _stream_entry("pull_requests", latest["pull_requests"])
        del untyped["type"]
        shapes = [
            _stream_entry("repositories", None),
            untyped,
            _stream_entry("commits", {}),
            {"type": "LEGACY", "data": {"deployments": latest["deployments"]}},
        ]
        canonical = [_stream_entry("pull_requests", latest["pull_requests"]), _stream_entry("deployments", latest["deployments"])]
        with_shapes = cli.run("read", conf, cli.catalog(), state=shapes, timeout=120)
        with_canonical = cli.run("read", conf, cli.catalog(), state=canonical, timeout=120)
        with_empty_list = cli.run("read", conf, cli.catalog(), state=[], timeout=120)
    for result in (with_shapes, with_canonical, with_empty_list):
        assert result.returncode == 0, result.errors
        assert "Traceback" not in result.stdout + result.stderr
    assert with_shapes.counts() == with_canonical.counts()
    assert with_shapes.counts()["pull_requests"] < first.counts()["pull_requests"], "the untyped entry was ignored"
    assert with_empty_list.counts() == first.counts()


# ----------------------------------------------------------------------------- the command line itself
def _console_script() -> Path:
    return Path(sys.executable).parent / "source-bitbucket"


def _launchers() -> List[Any]:
    main = pytest.param([sys.executable, str(cli.PROJECT_ROOT / "main.py")], "main.py", id="python_main.py")
    script = pytest.param([str(_console_script())], "source-bitbucket", id="console_script",
                          marks=pytest.mark.skipif(not _console_script().exists(), reason="the console script is not installed"))
    return [main, script]


@pytest.mark.parametrize("launcher,prog", _launchers())
def test_no_command_prints_the_usage_and_a_one_line_error_and_exits_2(launcher: List[str], prog: str) -> None:
    completed = subprocess.run(launcher, capture_output=True, text=True, timeout=60, cwd=cli.PROJECT_ROOT)
    assert completed.returncode == 2
    assert completed.stdout == ""
    usage, error = completed.stderr.splitlines()
    assert usage.startswith(f"usage: {prog} ") and "{spec,check,discover,read}" in usage
    assert error.startswith(f"{prog}: error: no command given") and "spec, check, discover, read" in error


@pytest.mark.parametrize("launcher,prog", _launchers())
def test_version_prints_the_package_version(launcher: List[str], prog: str) -> None:
    import re
    from importlib import metadata

    completed = subprocess.run(launcher + ["--version"], capture_output=True, text=True, timeout=60, cwd=cli.PROJECT_ROOT)
    assert completed.returncode == 0, completed.stderr
    declared = re.search(r'\bversion="([^"]+)"', (cli.PROJECT_ROOT / "setup.py").read_text()).group(1)
    assert metadata.version("source-bitbucket") == declared, "the installed metadata is stale: reinstall"
    assert completed.stdout == f"source-bitbucket {declared}\n"
    assert completed.stderr == ""
