"""Kill and resume: ``python main.py read`` is SIGKILLed mid-sync and resumed from its last states.

* After a kill at several points, the records emitted before the kill plus those of the resumed
  run (started with the last STATE of each stream emitted before the kill, as Airbyte does) cover
  every ground-truth record (at least once; duplicates are allowed).
* No STATE emitted before the kill claims a record that was not emitted before it: a cursor (or a
  commit frontier) only covers records already on stdout.
* A record dated in the future does not move its repository's cursor past records that arrive later.
* Records changed while a sync runs are caught by the next sync.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

import pytest

from integration_tests import connector_cli as cli
from integration_tests.ground_truth import REVIEW_CURSORS, connector_key, covers, pipeline_truth_keys, review_cursor_values
from integration_tests.sandbox import SandboxServer, generate_workspace
from integration_tests.sandbox.util import parse_iso

EMAIL, TOKEN = "dev@example.com", "sandbox-token-interrupt-71b2"
START_DATE = "2020-01-01T00:00:00Z"
NOW = (datetime.now(timezone.utc) - timedelta(days=3)).replace(microsecond=0).isoformat()
LATENCY_MS = 15
SECOND = 1_000_000


def new_workspace():
    """4 repositories (one empty); the busiest has 76 pull requests (2 pages) and 227 commits (3 pages)."""
    return generate_workspace(seed=3, repositories=4, pull_requests=120, commits=260, deployments=12, members=4, now=NOW)


def config(server: SandboxServer, workspace) -> Dict[str, Any]:
    return {"workspace": workspace.slug, "email": EMAIL, "api_token": TOKEN, "api_url": server.api_url,
            "start_date": START_DATE, "max_waiting_time": 0.5}




def keys(result: cli.SyncResult, stream: str) -> Set[Tuple]:
    return {connector_key(stream, r) for r in result.records.get(stream, [])}


CURSORS = {"pipelines": "created_on", "pipeline_steps": "pipeline_created_on"}


@dataclass
class Truth:
    """Ground truth with what the state checks need: keys, cursor values (epoch µs), commit parents."""

    keys: Dict[str, Set[Tuple]]
    repositories: Dict[str, int]  # uuid -> updated_on
    pull_requests: Dict[str, Dict[Tuple, int]]  # repo uuid -> {key: updated_on}
    commits: Dict[str, Dict[str, Tuple[int, List[str]]]]  # repo uuid -> {hash: (date, parent hashes)}
    deployments: Dict[str, Dict[Tuple, Optional[int]]]  # repo uuid -> {key: completed_on or None}
    pipelines: Dict[str, Dict[Tuple, int]] = field(default_factory=dict)  # repo uuid -> {key: created_on}
    pipeline_steps: Dict[str, Dict[Tuple, int]] = field(default_factory=dict)  # repo uuid -> {key: its pipeline's created_on}
    reviews: Dict[str, Dict[Tuple, int]] = field(default_factory=dict)  # code-review stream -> {key: its cursor value}

    @staticmethod
    def of(workspace) -> "Truth":
        with workspace.lock:
            repos = list(workspace.repositories)
            out = Truth({s: set() for s in cli.STREAMS}, {}, {}, {}, {})
            for repo in repos:
                out.repositories[repo.uuid] = repo.updated_us
                out.pull_requests[repo.uuid] = {(repo.uuid, pr.id): pr.updated_us for pr in repo.pull_requests}
                graph = repo.graph
                _, order = graph.listing(graph.heads(), ())
                out.commits[repo.uuid] = {graph.commits[i].hash: (graph.commits[i].date_us - graph.commits[i].date_us % SECOND,
                                                                  [graph.commits[p].hash for p in graph.commits[i].parents])
                                          for i in order}
                out.deployments[repo.uuid] = {(d.uuid,): d.completed_us if d.state == "COMPLETED" else None for d in repo.deployments}
                out.keys["repositories"].add((repo.uuid,))
                out.keys["pull_requests"] |= set(out.pull_requests[repo.uuid])
                out.keys["commits"] |= {(repo.uuid, h) for h in out.commits[repo.uuid]}
                out.keys["deployments"] |= set(out.deployments[repo.uuid])
                pipelines = repo.pipelines if repo.pipelines_enabled else []
                out.pipelines[repo.uuid] = {(repo.uuid, p.uuid): p.created_us for p in pipelines}
                out.pipeline_steps[repo.uuid] = {(repo.uuid, p.uuid, step.uuid): p.created_us for p in pipelines for step in p.steps}
            out.keys["workspace_users"] = {(m.account.uuid,) for m in workspace.members}
        out.keys.update(pipeline_truth_keys(workspace))
        out.reviews = review_cursor_values(workspace)
        out.keys.update({s: set(values) for s, values in out.reviews.items()})
        return out


# ----------------------------------------------------------------------------- kill and read
@dataclass
class Killed:
    lines: List[str]  # complete Airbyte message lines printed before the kill (drained after it)
    returncode: int
    killed: bool

    @property
    def result(self) -> cli.SyncResult:
        return cli.parse("\n".join(self.lines), self.returncode)


def read_until(conf: Mapping[str, Any], should_kill: Callable[[Dict[str, int], Mapping[str, Any]], bool],
               catalog: Optional[Mapping[str, Any]] = None) -> Killed:
    """Run ``main.py read`` (all streams unless ``catalog``), follow stdout line by line and SIGKILL it when ``should_kill(counts, message)``
    says so (``counts``: records per stream, ``records`` in all, ``states``). Every complete line the
    process printed before dying is kept (a line cut by the kill is dropped)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, content in (("config", conf), ("catalog", catalog or cli.catalog())):
            paths[name] = Path(tmp) / f"{name}.json"
            paths[name].write_text(json.dumps(content))
        with open(Path(tmp) / "stderr.txt", "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(cli.PROJECT_ROOT / "main.py"), "read", "--config", str(paths["config"]),
                 "--catalog", str(paths["catalog"])],
                stdout=subprocess.PIPE, stderr=stderr, cwd=cli.PROJECT_ROOT,
            )
            counts: Dict[str, int] = {"records": 0, "states": 0}
            raw: List[bytes] = []
            killed = False
            try:
                while True:
                    line = proc.stdout.readline()
                    if not line:
                        break
                    raw.append(line)
                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue
                    if message.get("type") == "RECORD":
                        stream = message["record"]["stream"]
                        counts[stream] = counts.get(stream, 0) + 1
                        counts["records"] += 1
                    elif message.get("type") == "STATE":
                        counts["states"] += 1
                    if should_kill(counts, message):
                        proc.send_signal(signal.SIGKILL)
                        killed = True
                        raw.append(proc.stdout.read())  # what it printed before dying
                        break
            finally:
                if proc.poll() is None and not killed:
                    proc.kill()
                proc.wait(timeout=60)
                proc.stdout.close()
    text = b"".join(raw).decode("utf-8", "replace")
    lines = text.split("\n")
    complete = lines[:-1]  # the last piece has no newline: empty, or a line cut by the kill
    return Killed([l for l in complete if l.strip()], proc.returncode, killed)


def unclaimed_records(lines: List[str], truth: Truth, start_date_us: int,
                      already: Optional[Dict[str, Set[Tuple]]] = None) -> List[str]:
    """Claims made by STATE lines about records not emitted before them.

    A repository's cursor claims every record of it with a cursor value at or before the cursor
    (the next sync asks for what is after it); a commit frontier (``exclude``) claims every commit
    reachable from the excluded tips. ``already``: records emitted by earlier runs.
    """
    emitted: Dict[str, Set[Tuple]] = {s: set((already or {}).get(s, ())) for s in cli.STREAMS}
    problems: List[str] = []
    for number, line in enumerate(lines):
        message = json.loads(line) if line.startswith("{") else {}
        if message.get("type") == "RECORD":
            record = message["record"]
            emitted[record["stream"]].add(connector_key(record["stream"], record["data"]))
        if message.get("type") != "STATE":
            continue
        stream = message["state"]["stream"]["stream_descriptor"]["name"]
        state = message["state"]["stream"].get("stream_state") or {}
        claimed: Set[Tuple] = set()
        if stream == "repositories" and state.get("updated_on"):
            cursor = parse_iso(state["updated_on"])
            claimed = {(uuid,) for uuid, updated in truth.repositories.items() if updated <= cursor}
        if stream == "projects" and state.get("updated_on"):
            cursor = parse_iso(state["updated_on"])
            claimed = {k for k, updated in truth.reviews[stream].items() if updated <= cursor}
        for uuid, entry in state.items():
            if not isinstance(entry, Mapping):
                continue
            if stream == "pull_requests" and entry.get("updated_on"):
                cursor = parse_iso(entry["updated_on"])
                claimed |= {k for k, updated in truth.pull_requests.get(uuid, {}).items() if updated <= cursor}
            elif stream == "deployments" and entry.get("completed_on"):
                cursor = parse_iso(entry["completed_on"])
                claimed |= {k for k, done in truth.deployments.get(uuid, {}).items() if done is not None and done <= cursor}
            elif stream in REVIEW_CURSORS and entry.get(REVIEW_CURSORS[stream]):
                cursor = parse_iso(entry[REVIEW_CURSORS[stream]])
                claimed |= {k for k, value in truth.reviews[stream].items() if k[0] == uuid and start_date_us < value <= cursor}
            elif stream in ("pipelines", "pipeline_steps") and entry.get(CURSORS[stream]):
                cursor = parse_iso(entry[CURSORS[stream]])
                table = truth.pipelines if stream == "pipelines" else truth.pipeline_steps
                claimed |= {k for k, created in table.get(uuid, {}).items() if start_date_us < created <= cursor}
            elif stream == "commits":
                commits = truth.commits.get(uuid, {})
                if entry.get("exclude"):
                    reached, todo = set(), [h for h in entry["exclude"] if h in commits]
                    while todo:
                        current = todo.pop()
                        if current not in reached:
                            reached.add(current)
                            todo.extend(p for p in commits[current][1] if p in commits)
                    claimed |= {(uuid, h) for h in reached if commits[h][0] > start_date_us}
                elif entry.get("date"):
                    cursor = parse_iso(entry["date"])
                    claimed |= {(uuid, h) for h, (date, _) in commits.items() if start_date_us < date <= cursor}
        missing = claimed - emitted[stream]
        if missing:
            problems.append(f"line {number}: {stream} state claims {len(missing)} records not emitted yet, e.g. {sorted(missing)[:2]}")
    return problems


# ----------------------------------------------------------------------------- kill points
def _big(truth: Truth, workspace) -> Tuple[int, int]:
    """(pull requests, commits) emitted before the busiest repository's: the repositories before it."""
    repos = sorted(workspace.repositories, key=lambda r: (r.created_us, r.slug))
    big = max(repos, key=lambda r: len(r.pull_requests))
    before = repos[: repos.index(big)]
    return sum(len(r.pull_requests) for r in before), sum(len(truth.commits[r.uuid]) for r in before)


Predicate = Callable[[Dict[str, int], Mapping[str, Any]], bool]
KILL_POINTS: Dict[str, Callable[[Truth, Any], Predicate]] = {
    "after_the_first_state": lambda truth, ws: lambda c, m: m.get("type") == "STATE",
    # 30 records into the busiest repository's 76 pull requests (its second page is held 2 s)
    "in_the_middle_of_the_busiest_repository_pull_requests":
        lambda truth, ws: lambda c, m: c.get("pull_requests", 0) >= _big(truth, ws)[0] + 30,
    # 150 records into its 227 commits: on its second page
    "during_commits": lambda truth, ws: lambda c, m: c.get("commits", 0) >= _big(truth, ws)[1] + 150,
    # the members request is held 2.5 s, so the process is still alive after its last deployment
    "near_the_end": lambda truth, ws: lambda c, m: c.get("deployments", 0) >= len(truth.keys["deployments"]) - 1,
}


@dataclass
class Interrupted:
    workspace: Any
    truth: Truth
    before: Killed
    resumed: cli.SyncResult
    state: List[Mapping[str, Any]]


def interrupt_and_resume(point: str) -> Interrupted:
    workspace = new_workspace()
    truth = Truth.of(workspace)
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN, latency_ms=LATENCY_MS) as server:
        server.add_fault("latency", "/members", 1, ms=2500)
        server.add_fault("latency", "&page=2", 1, ms=2000)  # the second page of the busiest repository's PRs
        conf = config(server, workspace)
        before = read_until(conf, KILL_POINTS[point](truth, workspace))
        state = before.result.final_state()
        resumed = cli.run("read", conf, cli.catalog(), state=state, timeout=240)
    return Interrupted(workspace, truth, before, resumed, state)


@pytest.fixture(scope="module")
def interruptions(request) -> Dict[str, Future]:
    """Run the selected kill points at once, each against its own sandbox."""
    wanted = {item.callspec.params["point"] for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec") and "point" in item.callspec.params}
    pool = ThreadPoolExecutor(max_workers=3)
    futures = {p: pool.submit(interrupt_and_resume, p) for p in KILL_POINTS if p in wanted}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_sync_resumed_from_its_last_states_loses_nothing(point: str, interruptions) -> None:
    run = interruptions[point].result(timeout=280)
    before, resumed, truth = run.before, run.resumed, run.truth
    assert before.killed and before.returncode == -signal.SIGKILL, "the sync ended before the kill point"
    first = before.result
    assert first.counts() != {s: len(truth.keys[s]) for s in cli.STREAMS}, "everything was emitted before the kill"
    if point == "in_the_middle_of_the_busiest_repository_pull_requests":
        big = max(run.workspace.repositories, key=lambda r: len(r.pull_requests))
        emitted = [r for r in first.records["pull_requests"] if r["repository_uuid"] == big.uuid]
        assert 0 < len(emitted) < len(big.pull_requests), "the kill did not land inside the repository"
    assert resumed.returncode == 0, resumed.errors
    for stream in cli.STREAMS:
        union = keys(first, stream) | keys(resumed, stream)
        assert union == truth.keys[stream], (stream, sorted(truth.keys[stream] - union)[:3], sorted(union - truth.keys[stream])[:3])


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_no_state_emitted_before_a_kill_claims_a_record_not_emitted_before_it(point: str, interruptions) -> None:
    run = interruptions[point].result(timeout=280)
    assert run.before.killed
    if point in ("during_commits", "near_the_end"):
        per_repository = [s for s in run.before.result.states
                          if s["stream"]["stream_descriptor"]["name"] != "repositories" and s["stream"].get("stream_state")]
        assert per_repository, "the kill came before any per-repository state: nothing to check"
    assert unclaimed_records(run.before.lines, run.truth, parse_iso(START_DATE)) == []
    # the resumed run makes the same promise, counting what the killed run emitted
    first = run.before.result
    already = {s: keys(first, s) for s in cli.STREAMS}
    assert unclaimed_records(run.resumed.stdout.splitlines(), run.truth, parse_iso(START_DATE), already) == []


# ----------------------------------------------------------------------------- future dates
def test_a_record_dated_in_the_future_does_not_move_its_repository_cursor_past_later_records() -> None:
    workspace = new_workspace()
    repos = sorted(workspace.repositories, key=lambda r: (r.created_us, r.slug))
    big = max(repos, key=lambda r: len(r.pull_requests))
    target = next(r for r in repos if r is not big and len(r.pull_requests) > 10)
    future_pr = target.pull_requests[len(target.pull_requests) // 2]
    real_now_us = parse_iso(datetime.now(timezone.utc).isoformat())
    with workspace.lock:
        future_pr.updated_us = real_now_us + 30 * 86400 * SECOND  # a month ahead of the real clock
        workspace.version += 1
    catalog = cli.catalog(streams=["pull_requests"])
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        conf = config(server, workspace)
        first = cli.run("read", conf, catalog)
        assert first.returncode == 0, first.errors
        assert (target.uuid, future_pr.id) in keys(first, "pull_requests")
        state = first.final_state()
        cursors = state[0]["stream"]["stream_state"]

        # later records: changed an hour ago by the real clock, long after every other record
        workspace.set_now(datetime.now(timezone.utc) - timedelta(hours=1))
        updated_id = next(pr.id for pr in target.pull_requests if pr is not future_pr)
        workspace.update_pull_request(target.slug, updated_id)
        new_id = workspace.add_pull_request(target.slug)["id"]
        later = {(target.uuid, updated_id), (target.uuid, new_id)}
        earliest_later = min(pr.updated_us for pr in target.pull_requests if (target.uuid, pr.id) in later)

        target_cursor = (cursors.get(target.uuid) or {}).get("updated_on")
        assert target_cursor is None or parse_iso(target_cursor) < earliest_later, (
            f"{target.slug}'s cursor {target_cursor} moved past records that arrive later")
        # the other repositories' cursors still advance to their latest record
        for repo in repos:
            if repo is not target and repo.pull_requests:
                assert parse_iso(cursors[repo.uuid]["updated_on"]) == max(pr.updated_us for pr in repo.pull_requests), repo.slug

        second = cli.run("read", conf, catalog, state=state)
        assert second.returncode == 0, second.errors
        got = {connector_key("pull_requests", r): r for r in second.records["pull_requests"]}
        assert later <= set(got), sorted(later - set(got))
        for key in later:
            pr = next(p for p in target.pull_requests if p.id == key[1])
            assert parse_iso(got[key]["updated_on"]) == pr.updated_us, key
        final = (second.final_state()[0]["stream"]["stream_state"].get(target.uuid) or {}).get("updated_on")
        assert final is None or parse_iso(final) < future_pr.updated_us


# ----------------------------------------------------------------------------- changes during a sync
def test_records_changed_while_a_sync_runs_are_caught_by_the_next_sync() -> None:
    """The busiest repository's first pull request is updated while its second page is being served:
    the page-numbered, updated_on-sorted listing shifts under the reader (one pull request moves from
    page 2 to page 1 and is not seen). Other streams change at the same moment."""
    workspace = new_workspace()
    repos = sorted(workspace.repositories, key=lambda r: (r.created_us, r.slug))
    big = max(repos, key=lambda r: len(r.pull_requests))
    other = next(r for r in repos if r is not big and r.pull_requests)
    oldest = min(big.pull_requests, key=lambda pr: pr.updated_us)
    running = next(((r, d) for r in repos for d in r.deployments if d.state == "IN_PROGRESS"), None)
    fired = threading.Event()

    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN) as server:
        server.add_fault("latency", "&page=2", 1, ms=1500)  # the second page of the busiest repository's PRs

        def mutate_when_page_two_is_requested() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if any(path.endswith("/pullrequests") and q.get("page") == ["2"] for _, path, q in server.requests):
                    workspace.set_now(datetime.now(timezone.utc))  # changes made now, during the sync
                    workspace.update_pull_request(big.slug, oldest.id)
                    workspace.add_pull_request(big.slug)
                    workspace.update_pull_request(other.slug, other.pull_requests[0].id)
                    workspace.push_commits(big.slug, 2)
                    workspace.update_repository(other.slug)
                    if running:
                        workspace.complete_deployment(running[0].slug, running[1].uuid)
                    fired.set()
                    return
                time.sleep(0.003)

        watcher = threading.Thread(target=mutate_when_page_two_is_requested, daemon=True)
        watcher.start()
        conf = config(server, workspace)
        first = cli.run("read", conf, cli.catalog())
        watcher.join(5)
        assert fired.is_set(), "the second page was never requested: the scenario tests nothing"
        assert first.returncode == 0, first.errors

        second = cli.run("read", conf, cli.catalog(), state=first.final_state())
        assert second.returncode == 0, second.errors

    truth = Truth.of(workspace)
    for stream in cli.STREAMS:
        union = keys(first, stream) | keys(second, stream)
        assert covers(stream, union, truth.keys[stream]), (stream, sorted(truth.keys[stream] - union)[:3])
    # the latest version emitted of every record is the current one
    latest: Dict[Tuple, Mapping[str, Any]] = {}
    for result in (first, second):
        for record in result.records["pull_requests"]:
            latest[connector_key("pull_requests", record)] = record
    for uuid, prs in truth.pull_requests.items():
        for key, updated in prs.items():
            assert parse_iso(latest[key]["updated_on"]) == updated, key
    repositories = {r["uuid"]: r for result in (first, second) for r in result.records["repositories"]}
    for uuid, updated in truth.repositories.items():
        assert parse_iso(repositories[uuid]["updated_on"]) == updated, uuid
    if running:
        deployments = {r["uuid"]: r for result in (first, second) for r in result.records["deployments"]}
        assert deployments[running[1].uuid]["state"]["name"] == "COMPLETED"


# ----------------------------------------------------------------------------- a listing shifts, then a kill
def _kill_after_a_shift_and_resume(workspace, stream: str, listing_path: Callable[[str], bool], mutate: Callable[[], None],
                                   extra_config: Optional[Mapping[str, Any]] = None, clock_dates: bool = False):
    """Read ``stream`` incrementally; when page 3 of its listing is requested, ``mutate`` the sandbox so that
    the first item of the ``sort=updated_on`` listing moves to its end (every later item slides one place to
    the front, and one slides onto a page already read). SIGKILL the process right after its first STATE,
    resume from that STATE and return (truth keys, the killed run, the resumed run). ``clock_dates``: the
    sandbox's Date header follows its own clock, which ``mutate`` does not move to the real time."""
    fired = threading.Event()
    catalog = cli.catalog(streams=[stream])
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN, clock_dates=clock_dates) as server:
        server.add_fault("latency", "page=3", 1, ms=1000)  # page 3 is answered after the change

        def mutate_when_page_three_is_requested() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not fired.is_set():
                if any(listing_path(path) and q.get("page") == ["3"] for _, path, q in server.requests):
                    if not clock_dates:
                        with workspace.lock:
                            workspace.set_now(datetime.now(timezone.utc))  # a change made now, during the sync
                    mutate()
                    fired.set()
                    return
                time.sleep(0.003)

        watcher = threading.Thread(target=mutate_when_page_three_is_requested, daemon=True)
        watcher.start()
        conf = {**config(server, workspace), **(extra_config or {})}
        killed = read_until(conf, lambda counts, message: message.get("type") == "STATE", catalog)
        watcher.join(5)
        assert fired.is_set(), "page 3 was never requested: the scenario tests nothing"
        resumed = cli.run("read", conf, catalog, state=killed.result.final_state(), timeout=240)
    return Truth.of(workspace), killed, resumed


def test_a_state_never_claims_a_pull_request_skipped_by_a_shifting_listing_even_if_killed_right_after_it() -> None:
    """1,200 pull requests in one repository (24 pages): the oldest is updated while page 3 is read, so one
    pull request slides onto page 2 and is skipped by the first walk. The first STATE must not claim it."""
    workspace = generate_workspace(seed=11, repositories=1, pull_requests=1200, commits=40, deployments=0, members=1, now=NOW)
    repo = workspace.repositories[0]
    oldest = min(repo.pull_requests, key=lambda pr: pr.updated_us)
    truth, killed, resumed = _kill_after_a_shift_and_resume(
        workspace, "pull_requests", lambda path: path.endswith("/pullrequests"),
        lambda: workspace.update_pull_request(repo.slug, oldest.id))
    assert resumed.returncode == 0, resumed.errors
    union = keys(killed.result, "pull_requests") | keys(resumed, "pull_requests")
    assert union == truth.keys["pull_requests"], sorted(truth.keys["pull_requests"] - union)[:3]
    assert unclaimed_records(killed.lines, truth, parse_iso(START_DATE)) == []


def test_a_state_never_claims_a_repository_skipped_by_a_shifting_listing_even_if_killed_right_after_it() -> None:
    """600 repositories (6 pages): the least recently updated one is edited while page 3 is read."""
    workspace = generate_workspace(seed=12, repositories=600, pull_requests=600, commits=600, deployments=0, members=1, now=NOW)
    oldest = min(workspace.repositories, key=lambda r: r.updated_us)
    truth, killed, resumed = _kill_after_a_shift_and_resume(
        workspace, "repositories", lambda path: path.rstrip("/").endswith(f"/repositories/{workspace.slug}"),
        lambda: workspace.update_repository(oldest.slug))
    assert resumed.returncode == 0, resumed.errors
    union = keys(killed.result, "repositories") | keys(resumed, "repositories")
    assert union == truth.keys["repositories"], sorted(truth.keys["repositories"] - union)[:3]
    assert unclaimed_records(killed.lines, truth, parse_iso(START_DATE)) == []


# ----------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_during_a_read_exits_130_quietly_without_claiming_the_interrupted_stream_finished() -> None:
    """SIGINT while the busiest repository's second pull request page is held: exit code 130, one line
    on stderr, no traceback, no "Finished syncing pull_requests" (streams that did finish still say so)."""
    workspace = new_workspace()
    with SandboxServer(workspace, email=EMAIL, api_token=TOKEN, latency_ms=LATENCY_MS) as server, \
            tempfile.TemporaryDirectory() as tmp:
        server.add_fault("latency", "&page=2", 1, ms=3000)  # the second page of the busiest repository's PRs
        paths = {}
        for name, content in (("config", config(server, workspace)), ("catalog", cli.catalog())):
            paths[name] = Path(tmp) / f"{name}.json"
            paths[name].write_text(json.dumps(content))
        proc = subprocess.Popen(
            [sys.executable, str(cli.PROJECT_ROOT / "main.py"), "read", "--config", str(paths["config"]),
             "--catalog", str(paths["catalog"])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cli.PROJECT_ROOT,
        )
        deadline = time.monotonic() + 60
        while not any(path.endswith("/pullrequests") and q.get("page") == ["2"] for _, path, q in server.requests):
            assert proc.poll() is None and time.monotonic() < deadline, "the second page was never requested"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    result = cli.parse(stdout.decode(), proc.returncode, stderr.decode())
    assert result.returncode == 130
    assert result.stderr == "source-bitbucket: interrupted\n"
    assert "Traceback" not in result.stdout + result.stderr
    messages = [log["message"] for log in result.logs]
    assert "Finished syncing repositories" in messages
    assert "Finished syncing pull_requests" not in messages, messages[-5:]
    assert any(m.startswith("Stopped syncing pull_requests before its end (interrupted)") for m in messages), messages[-5:]
    assert not any(m.startswith("Finished syncing") and m != "Finished syncing repositories" for m in messages)
    assert not result.errors


# ----------------------------------------------------------------------------- a server clock behind the local one
def test_a_listing_that_loses_one_item_and_gains_one_loses_nothing_when_bitbucket_s_clock_is_behind_ours() -> None:
    """``pull_request_state: OPEN``: while page 3 is requested, the oldest open pull request is merged (it
    leaves the listing) and a new one is opened (it joins at the end). ``size`` stays, nothing comes twice:
    the shift shows only in the new pull request's date, from Bitbucket's clock, which is an hour behind the
    local one here (the sandbox's Date header follows its clock). The cursor must not move past the pull
    request that slid onto page 2, even if the process is killed right after its STATE."""
    behind = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    workspace = generate_workspace(seed=11, repositories=1, pull_requests=1200, commits=40, deployments=0, members=1, now=behind)
    repo = workspace.repositories[0]
    oldest_open = min((pr for pr in repo.pull_requests if pr.state == "OPEN"), key=lambda pr: pr.updated_us)

    def merge_one_open_another() -> None:
        workspace.update_pull_request(repo.slug, oldest_open.id)  # merged: leaves the OPEN listing
        workspace.add_pull_request(repo.slug)  # joins at its end

    _, killed, resumed = _kill_after_a_shift_and_resume(
        workspace, "pull_requests", lambda path: path.endswith("/pullrequests"), merge_one_open_another,
        extra_config={"pull_request_state": "OPEN", "num_workers": 1}, clock_dates=True)
    assert resumed.returncode == 0, resumed.errors
    open_now = {(repo.uuid, pr.id) for pr in repo.pull_requests if pr.state == "OPEN"}
    union = keys(killed.result, "pull_requests") | keys(resumed, "pull_requests")
    assert open_now <= union, sorted(open_now - union)[:3]
