"""The fault matrix: ``python main.py read`` against the sandbox while it misbehaves.

Each scenario arms one kind of fault (rate limits, server errors, an HTML error page, latency, a
repository deleted mid-sync, a 403 on one repository, a truncated body, a ``next`` link to another
host or to the same page, a dropped connection, a server that keeps failing) and expects one of two
outcomes:

* ``ok``: exit code 0 and the records equal the sandbox's ground truth (primary keys per stream, no
  duplicates); a skipped repository's records are exactly the ones missing, with one warning naming
  it per stream.
* ``fail``: the sync fails cleanly (exit code != 0, an error TRACE naming the stream, the repository
  and the problem, no traceback or decoder error text in any TRACE message), and a resumed sync
  (the failed run's last state, faults cleared) reaches the ground truth together with it.

Retries are real sleeps with jitter (the CDK adds one second to each), so the scenarios run in
parallel, each against its own sandbox and workspace.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple
from urllib.parse import quote

import pytest

from integration_tests import connector_cli as cli
from integration_tests.ground_truth import keys, truth_keys
from integration_tests.sandbox import SandboxServer, generate_workspace

EMAIL, TOKEN = "dev@example.com", "sandbox-token-faults-3c9e"
# Generated data lies a few days before the real clock, so that no record is "in the future".
NOW = (datetime.now(timezone.utc) - timedelta(days=3)).replace(microsecond=0).isoformat()
WAIT_LOG = re.compile(r"(?P<stream>\w+) \((?P<where>[^)]*)\): waiting (?P<seconds>\d+(?:\.\d+)?) s before retry (?P<attempt>\d+) "
                      r"\((?P<cause>[^)]*)\); resuming at \d\d:\d\d:\d\d UTC")
WORKERS = 6


# ----------------------------------------------------------------------------- ground truth
def new_workspace():
    """4 repositories (one empty); the busiest has 81 pull requests (2 pages) and 235 commits (3 pages)."""
    return generate_workspace(seed=2, repositories=4, pull_requests=120, commits=260, deployments=12, members=4, now=NOW)








def wait_logs(result: cli.SyncResult) -> List[Dict[str, Any]]:
    """The connector's "<stream> (<where>): waiting X s before retry N (cause); resuming at ..." logs, parsed."""
    found = []
    for log in result.logs:
        match = WAIT_LOG.search(log.get("message", ""))
        if match:
            found.append({**match.groupdict(), "seconds": float(match["seconds"]), "attempt": int(match["attempt"])})
    return found


def config(server: SandboxServer, workspace, **extra: Any) -> Dict[str, Any]:
    return {"workspace": workspace.slug, "email": EMAIL, "api_token": TOKEN, "api_url": server.api_url,
            "start_date": "2020-01-01T00:00:00Z", "max_waiting_time": 0.5, **extra}


# ----------------------------------------------------------------------------- scenarios
@dataclass
class Roles:
    """The repositories a scenario aims at (by listing order and size)."""

    big: Any  # most pull requests: 2 pages of pull requests, 3 of commits
    small: Any  # another non-empty repository with deployments
    listing: str  # a fragment of the workspace's repository listing requests (both reads of it)

    @staticmethod
    def of(workspace) -> "Roles":
        repos = sorted(workspace.repositories, key=lambda r: (r.created_us, r.slug))
        big = max(repos, key=lambda r: len(r.pull_requests))
        small = next(r for r in repos if r is not big and r.deployments and r.pull_requests)
        assert len(big.pull_requests) > 50 and len(big.graph) > 200, "the busiest repository must span several pages"
        return Roles(big, small, f"/repositories/{workspace.slug}?")


def path_of(repo, resource: str) -> str:
    """The request path fragment of one repository's sub-resource, as the connector sends it."""
    return f"{quote(repo.uuid, safe='')}/{resource}"


def full_name(workspace, repo) -> str:
    return f"{workspace.slug}/{repo.slug}"


@dataclass
class Scenario:
    id: str
    arm: Callable[[SandboxServer, Any, Roles], Optional[Callable[[], None]]]  # may return a stopper
    outcome: str  # "ok" or "fail"
    stream: str  # the stream the fault concerns
    repo_role: Optional[str] = None  # "big" / "small": the repository the fault concerns
    waits: Optional[str] = None  # regex the wait causes must match; None: no retry may be logged
    min_waits: int = 0
    problem: Optional[str] = None  # fail: regex the error message must match
    target: Optional[Callable[[Roles], str]] = None  # the one request path the fault hits, if it hits one
    skips: Tuple[str, ...] = ()  # ok: streams for which repo_role's repository is skipped, with one warning
    quiet_skips: Tuple[str, ...] = ()  # ok: streams that skip it with an info line (a 404 there reads as "Pipelines off")
    deleted: bool = False  # the repository is deleted after the listing was read
    extra_config: Mapping[str, Any] = field(default_factory=dict)


def fault(kind: str, where: Callable[[Roles], str], times: Optional[int] = 1, **options: Any):
    def arm(server: SandboxServer, workspace, roles: Roles) -> None:
        server.add_fault(kind, where(roles), times, **options)

    return arm


def big_pull_requests_fault(kind: str, times: Optional[int] = 1, **options: Any):
    """A fault on the pull_requests stream's requests for the busiest repository."""
    def arm(server: SandboxServer, workspace, roles: Roles) -> None:
        server.add_fault(kind, PULL_REQUESTS_STREAM, times, repository=roles.big.slug, **options)

    return arm


def delete_after_listing(server: SandboxServer, workspace, roles: Roles) -> Callable[[], None]:
    """Delete the small repository once the first pull request request arrives (the shared listing
    has been read by then); every pull request listing request is held 700 ms and answered from the data as
    it is after the deletion, so the listing names the repository and its reads answer 404."""
    server.add_fault("latency", "/pullrequests?", None, ms=700)  # the listings, not each pull request's reads
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if any(path.endswith("/pullrequests") for _, path, _ in server.requests):
                workspace.delete_repository(roles.small.slug)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()

    def stopper() -> None:
        stop.set()
        thread.join(5)

    return stopper


BIG_PRS = lambda r: path_of(r.big, "pullrequests")  # noqa: E731
# The pull_requests stream's own walk (with participants), not the trimmed one the pull-request-scoped streams share.
PULL_REQUESTS_STREAM = "fields=%2Bvalues.participants"
BIG_COMMITS = lambda r: path_of(r.big, "commits")  # noqa: E731
SMALL_COMMITS = lambda r: path_of(r.small, "commits")  # noqa: E731

SCENARIOS = [
    # The longest first: two 429s without headers on one request wait 2.5-5 s, then 5-10 s (+1 s each).
    Scenario("429_burst_without_retry_after", big_pull_requests_fault("429", 2),
             "ok", "pull_requests", "big", waits=r"429", min_waits=2, target=BIG_PRS),
    Scenario("429_with_retry_after_1", fault("429", SMALL_COMMITS, 2, retry_after=1),
             "ok", "commits", "small", waits=r"429.*Retry-After", min_waits=2, target=SMALL_COMMITS),
    Scenario("500_twice", fault("500", BIG_COMMITS, 2),
             "ok", "commits", "big", waits=r"500", min_waits=2, target=BIG_COMMITS),
    Scenario("502_html_page_twice", fault("502_html", lambda r: r.listing, 2),
             "ok", "repositories", waits=r"502", min_waits=2),
    Scenario("latency", fault("latency", lambda r: "/pullrequests", 3, ms=1500),
             "ok", "pull_requests"),
    Scenario("repository_deleted_mid_sync", delete_after_listing,
             "ok", "pull_requests", "small", skips=("pull_requests", "commits", "deployments", "environments",
                                                    "pull_request_activity", "branches", "tags",  # the last three:
                                                    "pull_request_comments", "pull_request_commits",  # one warning
                                                    "pull_request_diffstat"),  # for their shared listing
             quiet_skips=("pipelines", "pipeline_steps"), deleted=True),
    Scenario("403_on_one_repository_deployments", fault("403", lambda r: path_of(r.small, "deployments"), None),
             "ok", "deployments", "small", skips=("deployments",)),
    Scenario("malformed_json_once", fault("malformed_json", lambda r: "&page=2", 1),  # the busiest's 2nd PR page
             "ok", "pull_requests", "big", waits=r".", min_waits=1),
    Scenario("connection_dropped", fault("drop_connection", BIG_COMMITS, 1),
             "ok", "commits", "big", waits=r"(?i)network|connection", min_waits=1, target=BIG_COMMITS),
    Scenario("next_link_to_foreign_host", big_pull_requests_fault("foreign_next", 1),
             "fail", "pull_requests", "big", problem=r"evil\.example\.com"),
    Scenario("next_link_repeats_the_page", fault("repeat_next", lambda r: "&page=2", 1),
             "fail", "pull_requests", "big", problem=r"(?i)repeat|loop|already read"),
    Scenario("500_until_the_budget_is_spent", big_pull_requests_fault("500", None),
             "fail", "pull_requests", "big", waits=r"500", min_waits=2, problem=r"\b500\b",
             extra_config={"max_waiting_time": 0.05}, target=BIG_PRS),
]


@dataclass
class Outcome:
    first: cli.SyncResult
    seconds: float
    before: Dict[str, Set[Tuple]]  # ground truth when the sync started
    after: Dict[str, Set[Tuple]]  # ground truth when it ended
    roles: Roles
    workspace: Any
    resumed: Optional[cli.SyncResult] = None
    fault_requests: int = 0
    requests: List[Tuple[str, str, Dict[str, List[str]]]] = field(default_factory=list)


def play(scenario: Scenario) -> Outcome:
    workspace = new_workspace()
    roles = Roles.of(workspace)
    before = truth_keys(workspace)
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        conf = config(server, workspace, **scenario.extra_config)
        stopper = scenario.arm(server, workspace, roles)
        started = time.monotonic()
        first = cli.run("read", conf, cli.catalog(), timeout=240)
        seconds = time.monotonic() - started
        if stopper:
            stopper()
        fired = sum(rule.fired for rule in server.faults.rules)
        outcome = Outcome(first, seconds, before, truth_keys(workspace), roles, workspace, fault_requests=fired,
                          requests=server.requests)
        if scenario.outcome == "fail":
            server.clear_faults()
            outcome.resumed = cli.run("read", config(server, workspace), cli.catalog(), state=first.final_state(), timeout=240)
        return outcome


@pytest.fixture(scope="module")
def outcomes(request) -> Dict[str, Future]:
    """Play the selected scenarios at once (their waits overlap); each test takes its own."""
    wanted = {item.callspec.params["scenario"].id for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec") and "scenario" in item.callspec.params}
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    futures = {s.id: pool.submit(play, s) for s in SCENARIOS if s.id in wanted}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_fault(scenario: Scenario, outcomes: Dict[str, Future]) -> None:
    outcome = outcomes[scenario.id].result(timeout=280)
    first, roles, workspace = outcome.first, outcome.roles, outcome.workspace
    repo = getattr(roles, scenario.repo_role) if scenario.repo_role else None
    assert outcome.fault_requests > 0 or scenario.deleted, "the fault never fired: the scenario tests nothing"
    for trace in first.traces:
        if trace.get("type") == "ERROR":
            message = trace["error"].get("message") or ""
            assert "Traceback" not in message and "JSONDecodeError" not in message, message

    waits = wait_logs(first)
    if scenario.waits is None:
        assert not waits, f"no retry expected, got {waits}"
    else:
        relevant = [w for w in waits if w["stream"] == scenario.stream and re.search(scenario.waits, w["cause"])]
        assert len(relevant) >= scenario.min_waits, f"expected >= {scenario.min_waits} logged waits, got {waits}"
        # the waits are real: the run lasted at least as long as the waits it logged
        assert outcome.seconds >= sum(w["seconds"] for w in relevant[: scenario.min_waits]), (outcome.seconds, relevant)
        assert all(w["seconds"] > 0 for w in relevant), relevant  # never retrying at once
        if repo is not None and scenario.stream != "repositories":  # each wait names the repository it holds up
            assert all(w["where"] == f"repository {full_name(workspace, repo)}" for w in relevant), relevant
        retry_lines = [log["message"] for log in first.logs if "before retry" in log["message"] or "Retrying in" in log["message"]]
        assert len(retry_lines) == len(waits), retry_lines  # one line per wait: not the CDK's "Rate limit exceeded (HTTP 500)" too
        if "Retry-After" in scenario.waits:
            assert all(w["seconds"] == 1.0 for w in relevant), relevant  # the header is honoured as sent
        elif scenario.waits == "429":
            assert relevant[1]["seconds"] >= relevant[0]["seconds"], relevant  # the wait grows

    if scenario.outcome == "ok":
        assert first.returncode == 0, first.errors
        assert not first.errors
        missing = {s: set() for s in cli.STREAMS}
        if repo is not None and scenario.skips:
            for stream in scenario.skips + scenario.quiet_skips:
                missing[stream] = {k for k in outcome.before[stream] if _repo_of(stream, k, repo, workspace)}
                assert missing[stream] or stream == "deployments" and not repo.deployments, (stream, "nothing to skip")
        for stream in cli.STREAMS:
            got = keys(first, stream)
            assert len(got) == len(set(got)), f"{stream}: duplicate records in one sync"
            expected = outcome.before[stream] - missing[stream]
            assert set(got) == expected, (stream, sorted(set(got) ^ expected)[:5])
        traps = sandbox_traps(workspace)
        warned = [log["message"] for log in first.logs if log.get("level") in ("WARN", "WARNING")
                  and not any(trap in log["message"] for trap in traps)]
        for stream in cli.STREAMS:
            naming = [m for m in warned if repo is not None and full_name(workspace, repo) in m and re.search(rf"\b{stream}\b", m)]
            assert len(naming) == (1 if stream in scenario.skips else 0), (stream, naming)
        if scenario.skips:
            assert all(re.search(r"40[34]", m) for m in warned if full_name(workspace, repo) in m)
    else:
        assert first.returncode != 0
        messages = [e.get("message") or "" for e in first.errors]
        naming = [m for m in messages if scenario.stream in m and (repo is None or full_name(workspace, repo) in m)]
        assert naming, f"no error names {scenario.stream} and the repository: {messages}"
        assert any(re.search(scenario.problem, m) for m in naming), (scenario.problem, naming)
        resumed = outcome.resumed
        assert resumed is not None and resumed.returncode == 0, resumed.errors if resumed else None
        for stream in cli.STREAMS:
            union = set(keys(first, stream)) | set(keys(resumed, stream))
            assert union == outcome.after[stream], (stream, sorted(union ^ outcome.after[stream])[:5])


def sandbox_traps(workspace) -> List[str]:
    """How the connector names the pull requests the sandbox always skips with a warning (a diffstat
    answering 400 No common ancestor or 555, a deleted fork's commits): "pull request #N of repository W/R"."""
    by_uuid = {r.uuid: r.slug for r in workspace.repositories}
    skipped = set(workspace.diffstat_errors) | workspace.deleted_fork_pull_requests
    return [f"pull request #{pr_id} of repository {workspace.slug}/{by_uuid[uuid]}" for uuid, pr_id in skipped if uuid in by_uuid]


def _repo_of(stream: str, key: Tuple, repo, workspace) -> bool:
    """Whether a ground-truth key belongs to ``repo`` (deployments are matched by uuid)."""
    if stream in ("pull_requests", "commits", "environments", "pipelines", "pipeline_steps", "pull_request_activity",
                  "pull_request_comments", "pull_request_commits", "pull_request_diffstat", "branches", "tags"):
        return key[0] == repo.uuid
    if stream == "deployments":
        return key[0] in {d.uuid for d in repo.deployments}
    return False


def _retry_params():
    return [pytest.param(s, id=s.id) for s in SCENARIOS if s.target is not None]


@pytest.mark.parametrize("scenario", _retry_params())
def test_every_logged_retry_is_made(scenario: Scenario, outcomes: Dict[str, Future]) -> None:
    """The fault hits one request: it is sent once, then once per logged "waiting ... before retry"."""
    outcome = outcomes[scenario.id].result(timeout=280)
    target = scenario.target(outcome.roles)
    sent = [q for _, path, q in outcome.requests if path.endswith(target) and "page" not in q
            and "values.comment_count" not in "".join(q.get("fields", []))]  # not the pull-request-scoped streams' walk
    waits = [w for w in wait_logs(outcome.first) if w["stream"] == scenario.stream]
    assert [w["attempt"] for w in waits] == list(range(1, len(waits) + 1)), waits
    assert len(sent) == len(waits) + 1, f"{len(sent)} requests for {len(waits)} logged retries"


# ----------------------------------------------------------------------------- a wrong workspace
def test_a_wrong_workspace_stops_the_sync_after_the_first_stream_with_one_short_message() -> None:
    workspace = new_workspace()
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        result = cli.run("read", {**config(server, workspace), "workspace": "no-such-workspace"}, cli.catalog(), timeout=120)
        requests_sent = len(server.requests)
    assert result.returncode != 0
    stream_errors = [t["error"] for t in result.traces if t.get("type") == "ERROR" and t["error"].get("stream_descriptor")]
    assert [e["stream_descriptor"]["name"] for e in stream_errors] == ["repositories"]  # the other streams are not attempted
    assert "Workspace 'no-such-workspace' was not found" in stream_errors[0]["message"]
    assert requests_sent == 1
    for error in result.errors:  # no raw request/response dump in what the user reads
        assert "Response (headers)" not in error["message"] and len(error["message"]) < 600, error["message"]
    assert len(result.stdout) < 30_000
