"""Benchmark the connector against the sandbox: ``python -m integration_tests.benchmark``.

Runs, against one generated sandbox workspace:

1. a full sync (every stream in ``full_refresh``) of ``python main.py read``;
2. an incremental sync with nothing changed (the project's catalog, with the state of a previous
   incremental sync, which is run first and reported too);
3. the same with every repository last read 8 days ago (``aged`` state: the skip rule's weekly full check);
4. an incremental sync after a typical hour of changes (``typical_hour``: pushes, a branch, pull
   requests opened, merged and commented on, deployments, pipelines, a tag), against the minimum for
   exactly those changes;
5. a plain sequential ``requests`` loop that fetches the same pages (each stream's first page, path
   and parameters as the stream instances give them in ``request_plan``, following ``next``; per
   repository for the repository-scoped streams, per pipeline of each repository for
   pipeline_steps, the pipeline listing read once; per pull request of the pull_requests stream's
   pages for the pull-request-scoped streams) and writes the same records as JSON lines;

and prints one markdown table: requests per endpoint (``ENDPOINTS``: the sandbox's request kinds, the
pipelines module's environments, pipelines and pipeline_steps included) and against the minimum possible, records,
records/s, wall and CPU time, peak RSS, and connector / plain-loop ratios. ``--memory-check`` instead
runs a ~20k-record and a ~200k-record full sync and compares their peak RSS; ``--profile`` adds a
cProfile of the full sync; ``--json`` prints the results as JSON (the table then goes to stderr).

Every measured program is a separate process, and so is the sandbox: its request handling is CPU
heavy (it renders every page in Python), and in the benchmark's own process it would share the GIL
(and skew the timing) with whatever the benchmark does. Each run writes stdout to a file on disk (the
sink); records are counted from it afterwards, outside the timing. Wall time is from spawning the
process to its exit, interpreter start-up included (reported separately as "start-up"); peak RSS
and CPU time come from ``os.wait4`` of that process; server CPU is read from ``/proc``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from integration_tests import connector_cli as cli

ENDPOINTS = ("repositories", "pullrequests", "commits", "deployments", "members", "environments", "pipelines",
             "pipeline_steps", "pull_request_activity", "pull_request_comments", "pull_request_commits",
             "pull_request_diffstat", "branches", "tags", "projects")
# Projects: the connector's pagelen (Bitbucket documents no cap for them).
MAX_PAGELEN = {"repositories": 100, "pullrequests": 50, "commits": 100, "deployments": 100, "members": 100,
               "environments": 100, "pipelines": 100, "pipeline_steps": 100, "pull_request_activity": 50,
               "pull_request_comments": 100, "pull_request_commits": 100, "pull_request_diffstat": 500,
               "branches": 100, "tags": 100, "projects": 50}
# Listings read once per repository (``per_repo``: one item count per repository, in listing order).
REPOSITORY_SCOPED = ("pullrequests", "commits", "deployments", "environments", "pipelines", "pull_request_activity",
                     "branches", "tags")
# Listings read once per pull request (``per_pull_request``: one item count per pull request read, every
# repository's; comments only for those with comments). The diffstat costs one more request each: its 302.
PULL_REQUEST_SCOPED = ("pull_request_comments", "pull_request_commits", "pull_request_diffstat")
# Skipped in a nothing-changed sync: no repository's updated_on moved (the skip rule), no pull request changed.
UNCHANGED_SKIPPED = ("commits", "branches", "tags") + PULL_REQUEST_SCOPED
# Listings read once per pipeline (``per_repo``: one step count per pipeline, every repository's).
PIPELINE_SCOPED = ("pipeline_steps",)
# Read in full refresh even by the project's (incremental) catalog: a nothing-changed sync reads them whole.
FULL_REFRESH_ONLY = ("environments",)
EMAIL, TOKEN = "bench@example.com", "sandbox-token-bench"
FULL_CHECK_AGE = 8 * 86400  # seconds: past the skip rule's weekly full check (FULL_CHECK_EVERY, 7 days)
START_DATE = "2020-01-01T00:00:00Z"
# The repository of the plain loop's request plan: the plain loop puts each repository's quoted uuid in its place.
PLACEHOLDER_REPOSITORY = {"uuid": "REPOSITORY-UUID-PLACEHOLDER", "full_name": "REPOSITORY-FULL-NAME-PLACEHOLDER",
                          "slug": "REPOSITORY-SLUG-PLACEHOLDER"}
# The pipeline of the plan's per-pipeline pages: the plain loop puts each pipeline's quoted uuid in its place.
PLACEHOLDER_PIPELINE = {"uuid": "PIPELINE-UUID-PLACEHOLDER", "created_on": START_DATE}
# The pull request of the plan's per-pull-request pages: the plain loop puts each pull request's id in its place.
PLACEHOLDER_PULL_REQUEST = {"id": "PULL-REQUEST-ID-PLACEHOLDER", "updated_on": START_DATE, "comment_count": 1, "state": "OPEN"}
MEMORY_SCALES = {  # ~20k and ~200k records, same 40 repositories, same mix
    "~20k records": dict(repositories=40, pull_requests=3200, commits=16000, deployments=800, members=50),
    "~200k records": dict(repositories=40, pull_requests=32000, commits=160000, deployments=8000, members=50),
}


def full_catalog() -> Dict[str, Any]:
    """Every stream in full_refresh mode."""
    return cli.catalog({s: "full_refresh" for s in cli.STREAMS})


def log(message: str) -> None:
    """Progress, on stderr."""
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the sandbox, in its own process
class Sandbox:
    """``python -m integration_tests.benchmark --_serve``: a SandboxServer in a child process.

    ``info`` holds the API URL and the item counts the minimum request counts and the expected
    records are computed from: ``per_repo`` (items per repository for each ``REPOSITORY_SCOPED``
    listing, steps per pipeline for ``pipeline_steps``), ``in_progress_deployments`` and
    ``open_pipeline_steps`` (the step count of each pipeline not COMPLETED). The child exits when its stdin closes, so it never outlives the benchmark.
    """

    def __init__(self, scale: Mapping[str, int], seed: int, latency_ms: int, timeout: float = 600):
        spec = json.dumps({**scale, "seed": seed, "latency_ms": latency_ms})
        self.proc = subprocess.Popen([sys.executable, "-m", "integration_tests.benchmark", "--_serve", spec],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=cli.PROJECT_ROOT, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            raise RuntimeError("the sandbox process did not start serving")
        self.info = json.loads(line)

    def _control(self, method: str) -> Mapping[str, Any]:
        request = urllib.request.Request(self.info["origin"] + "/_sandbox/requests", method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def reset_requests(self) -> None:
        self._control("DELETE")

    def hour(self) -> Mapping[str, Any]:
        """Apply a typical hour of changes (``typical_hour``) and return the new info (``info`` keeps the old)."""
        self.proc.stdin.write("hour\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def request_counts(self) -> Dict[str, int]:
        counts = self._control("GET")["counts"]
        return {e: counts.get(e, 0) for e in ENDPOINTS}

    def cpu_seconds(self) -> Optional[float]:
        """User + system CPU time of the sandbox process so far (Linux /proc), or None."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(spec: Mapping[str, Any]) -> None:
    """Child side of :class:`Sandbox`: generate, print the info line, then answer stdin until it closes:
    ``hour`` applies :func:`typical_hour` and prints the new info line."""
    from integration_tests.sandbox import SandboxServer, generate_workspace

    latency = spec.pop("latency_ms")
    workspace = generate_workspace(**spec)
    server = SandboxServer(workspace, email=EMAIL, api_token=TOKEN, latency_ms=latency).start()
    print(json.dumps(workspace_info(workspace, server)), flush=True)
    for line in sys.stdin:
        if line.strip() == "hour":
            typical_hour(workspace)
            print(json.dumps(workspace_info(workspace, server)), flush=True)
    server.stop()


def workspace_info(workspace, server) -> Dict[str, Any]:
    """The item counts the minimum request counts and the expected records are computed from, and the
    versions (``updated_on`` of repositories and pull requests, pipeline states) that tell what changed."""
    from integration_tests.sandbox import reviews
    from integration_tests.sandbox.util import parse_iso
    from source_bitbucket.streams.pull_request_activity import LOOKBACK, activity_date

    repos = workspace.repositories
    pipelines = [p for r in repos if r.pipelines_enabled for p in r.pipelines]  # Pipelines off: a 404, none
    per_repo = {
        "pullrequests": [len(r.pull_requests) for r in repos],
        "commits": [len(r.graph.listing(r.graph.heads(), ())[1]) for r in repos],
        "deployments": [len(r.deployments) for r in repos],
        "environments": [len(r.environment_models) for r in repos],
        "pipelines": [len(r.pipelines) if r.pipelines_enabled else 0 for r in repos],
        "pipeline_steps": [len(p.steps) for p in pipelines],  # per pipeline
        "pull_request_activity": [len(reviews.activity(workspace, r)) for r in repos],
        "branches": [len(r.graph.branches) for r in repos],
        "tags": [len(r.tags) for r in repos],
    }
    # one row per pull request: repository index, id, updated_on, then its comments (None: comment_count 0),
    # commits and files; a deleted fork's commits and an uncomputable diffstat: one request, no records
    pull_requests = [[i, pr.id, pr.updated_us, len(reviews.published(pr)) if pr.comment_count > 0 else None,
                      0 if (r.uuid, pr.id) in workspace.deleted_fork_pull_requests else len(reviews.pull_request_commits(r, pr)),
                      0 if (r.uuid, pr.id) in workspace.diffstat_errors
                      else len(reviews.diffstat(workspace, r, reviews.revision_spec(pr)))]
                     for i, r in enumerate(repos) for pr in r.pull_requests]
    per_pull_request = {
        "pull_request_comments": [row[3] for row in pull_requests if row[3] is not None],
        "pull_request_commits": [row[4] for row in pull_requests],
        "pull_request_diffstat": [row[5] for row in pull_requests],
    }
    lookback = 0  # what a nothing-changed sync emits again: the entries of the hour before each feed's newest
    for r in repos:
        dates = [parse_iso(activity_date(e)) for e in reviews.activity(workspace, r)]
        lookback += sum(1 for d in dates if d > max(dates) - LOOKBACK.total_seconds() * 1_000_000) if dates else 0
    in_progress = sum(1 for r in repos for d in r.deployments if d.completed_us is None)
    open_steps = [len(p.steps) for p in pipelines if p.state != "COMPLETED"]
    return {"api_url": server.api_url, "origin": server.origin, "workspace": workspace.slug,
            "repositories": len(repos), "members": len(workspace.members), "per_repo": per_repo,
            "per_pull_request": per_pull_request, "projects": len(workspace.projects),
            "activity_lookback": lookback,
            "in_progress_deployments": in_progress, "open_pipeline_steps": open_steps,
            "repository_updated_on": [r.updated_us for r in repos], "pull_requests": pull_requests,
            "pipeline_list": [[p.uuid, p.state, len(p.steps)] for p in pipelines]}


def typical_hour(workspace) -> None:
    """An hour of a busy team's work, scaled to the workspace (one repository in eight is touched): pushes,
    a new branch, pull requests opened, merged, commented on and edited, deployments and pipelines run, a tag."""
    import random

    rng = random.Random(f"{workspace.slug}-hour")
    repos = [r for r in workspace.repositories if r.main_head() is not None]
    touched = rng.sample(repos, max(1, len(workspace.repositories) // 8))
    for repo in touched:
        workspace.push_commits(repo.slug, rng.randint(1, 3))
        workspace.add_pull_request(repo.slug)
        opened = [pr for pr in repo.pull_requests if pr.state == "OPEN"]
        if opened:
            workspace.update_pull_request(repo.slug, rng.choice(opened).id)
        commented = [pr for pr in repo.pull_requests if pr.comment_count > 0]
        if commented:
            workspace.edit_comment(repo.slug, rng.choice(commented).id)
        workspace.add_deployment(repo.slug)
        if repo.pipelines_enabled:
            workspace.add_pipeline(repo.slug)
    workspace.add_branches(touched[0].slug, 1)
    workspace.add_tag(touched[-1].slug)


# ---------------------------------------------------------------- measured child processes
@dataclass
class Measured:
    """Exit status, wall time, CPU time and peak RSS of one child process."""

    status: str
    returncode: Optional[int]
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def run_measured(args: Sequence[str], stdout_path: Path, stderr_path: Path, timeout: float) -> Measured:
    """Run ``args`` with stdout/stderr to files; reap it with ``os.wait4`` for its own rusage."""
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(args), stdout=out, stderr=err, cwd=cli.PROJECT_ROOT)
        done: Dict[str, Any] = {}

        def reap() -> None:
            _, wait_status, usage = os.wait4(proc.pid, 0)
            done.update(end=time.perf_counter(), wait_status=wait_status, usage=usage)

        reaper = threading.Thread(target=reap, daemon=True)
        reaper.start()
        try:
            reaper.join(timeout)
        except KeyboardInterrupt:
            os.kill(proc.pid, signal.SIGKILL)
            raise
        timed_out = reaper.is_alive()
        if timed_out:
            os.kill(proc.pid, signal.SIGKILL)
            reaper.join()
    returncode = os.waitstatus_to_exitcode(done["wait_status"])
    proc.returncode = returncode  # reaped here, not by Popen
    usage = done["usage"]
    status = f"timeout ({timeout:.0f} s)" if timed_out else "ok" if returncode == 0 else f"exit {returncode}"
    return Measured(status, returncode, done["end"] - start, usage.ru_utime + usage.ru_stime,
                    usage.ru_maxrss / 1024)  # ru_maxrss is in KiB on Linux


@dataclass
class Run:
    """One row of the table."""

    name: str
    kind: str  # full | incremental | plain; "full" work may be done in incremental mode
    status: str = "ok"
    wall_s: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: Optional[float] = None
    peak_rss_mb: float = 0.0
    records: int = 0
    records_by_stream: Dict[str, int] = field(default_factory=dict)
    requests: Dict[str, int] = field(default_factory=dict)
    minimum: Dict[str, int] = field(default_factory=dict)
    expected_records: Optional[int] = None

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s if self.wall_s else 0.0

    def ratio(self, endpoint: Optional[str] = None) -> Optional[float]:
        """Requests / minimum for one endpoint, or over all of them."""
        keys = [endpoint] if endpoint else list(ENDPOINTS)
        minimum = sum(self.minimum.get(k, 0) for k in keys)
        requests = sum(self.requests.get(k, 0) for k in keys)
        if not minimum:
            return 1.0 if requests == 0 else None  # nothing needed, nothing asked: at the minimum
        return requests / minimum


def minimum_requests(info: Mapping[str, Any], kind: str, before: Optional[Mapping[str, Any]] = None) -> Dict[str, int]:
    """The fewest requests that can do a run's work with each endpoint's maximum pagelen.

    A listing of n items needs ceil(n / pagelen) pages, and at least one request (an empty listing
    is only known empty once asked; a repository with Pipelines off answers its pipeline listing
    404, one request too). Full sync and plain loop: every listing once, the repository listing
    included once: each repository-scoped listing per repository, the steps listing per pipeline
    (the pipeline listing read once, shared by pipelines and pipeline_steps).

    The per-pull-request listings: each pull request's (comments: those with comments), the diffstat's
    302 counted too; the pull request listing is counted once (one walk could serve the pull_requests
    stream and the pull-request-scoped ones).

    Nothing-changed incremental sync: the repository, member and project listings; no commits, refs or
    per-pull-request request (no repository's ``updated_on`` moved, no pull request changed); one request
    per repository for pull requests, deployments, pipelines and the activity feed; every page of environments
    (full refresh only); and for each open pipeline (not COMPLETED, ``open_pipeline_steps``) one
    ``GET .../pipelines/{uuid}`` (pipelines) and one steps walk (pipeline_steps).

    ``weekly``: nothing changed, but every repository's last read is a week old (the skip rule's full
    check): one commits request per repository (nothing new) and every page of its branches and tags.

    ``changes``: an incremental sync after changes, ``before`` the info of the previous sync. As nothing
    changed, but: pull requests and the activity feed, the pages of what is new in each repository (at
    least one); commits, branches and tags only for the repositories whose ``updated_on`` moved (the new
    commits' pages, every ref page); each new or updated pull request's comments, commits and diffstat;
    each pipeline open at the previous sync one GET and one steps walk, each new pipeline one steps walk.
    """

    def pages(n: int, endpoint: str) -> int:
        return max(1, math.ceil(n / MAX_PAGELEN[endpoint]))

    incremental = kind in ("incremental", "weekly", "changes")
    per_repo = info["per_repo"]
    out = {"repositories": pages(info["repositories"], "repositories"), "members": pages(info["members"], "members"),
           "projects": pages(info.get("projects", 0), "projects")}
    for endpoint in REPOSITORY_SCOPED + PIPELINE_SCOPED:
        counts = per_repo.get(endpoint, [])
        out[endpoint] = sum(pages(n, endpoint) for n in counts)
    per_pull_request = info.get("per_pull_request", {})
    for endpoint in PULL_REQUEST_SCOPED:
        counts = per_pull_request.get(endpoint, [])
        out[endpoint] = sum(pages(n, endpoint) for n in counts) + (len(counts) if endpoint == "pull_request_diffstat" else 0)
    if incremental:
        open_steps = info.get("open_pipeline_steps", [])
        for endpoint in REPOSITORY_SCOPED:
            if endpoint not in FULL_REFRESH_ONLY:
                out[endpoint] = len(per_repo.get(endpoint, []))
        for endpoint in UNCHANGED_SKIPPED:
            out[endpoint] = 0
        out["projects"] = 1
        if "pipelines" in per_repo:
            out["pipelines"] += len(open_steps)
        if "pipeline_steps" in per_repo:
            out["pipeline_steps"] = sum(pages(n, "pipeline_steps") for n in open_steps)
    if kind == "weekly":
        out["commits"] = len(per_repo.get("commits", []))
        for endpoint in ("branches", "tags"):
            out[endpoint] = sum(pages(n, endpoint) for n in per_repo.get(endpoint, []))
    if kind == "changes":
        out.update(_changed_minimum(info, before, pages))
    return out


def _changed_minimum(info: Mapping[str, Any], before: Mapping[str, Any], pages) -> Dict[str, int]:
    """The endpoints of ``minimum_requests(kind="changes")`` that depend on what changed since ``before``."""
    per_repo, was = info["per_repo"], before["per_repo"]
    moved = [i for i, (now, then) in enumerate(zip(info["repository_updated_on"], before["repository_updated_on"]))
             if now != then]
    seen = {(row[0], row[1]): row[2] for row in before["pull_requests"]}
    changed = [row for row in info["pull_requests"] if seen.get((row[0], row[1])) != row[2]]
    changed_in = [sum(1 for row in changed if row[0] == i) for i in range(info["repositories"])]
    new_activity = [now - then for now, then in zip(per_repo["pull_request_activity"], was["pull_request_activity"])]
    was_open = [uuid for uuid, state, _ in before["pipeline_list"] if state != "COMPLETED"]
    known = {uuid for uuid, _, _ in before["pipeline_list"]}
    walked = [steps for uuid, _, steps in info["pipeline_list"] if uuid in was_open or uuid not in known]
    return {
        "pullrequests": sum(pages(n, "pullrequests") for n in changed_in),
        "pull_request_activity": sum(pages(n, "pull_request_activity") for n in new_activity),
        "commits": sum(pages(per_repo["commits"][i] - was["commits"][i], "commits") for i in moved),
        "branches": sum(pages(per_repo["branches"][i], "branches") for i in moved),
        "tags": sum(pages(per_repo["tags"][i], "tags") for i in moved),
        "pull_request_comments": sum(pages(row[3], "pull_request_comments") for row in changed if row[3] is not None),
        "pull_request_commits": sum(pages(row[4], "pull_request_commits") for row in changed),
        "pull_request_diffstat": sum(pages(row[5], "pull_request_diffstat") + 1 for row in changed),
        "pipelines": len(per_repo["pipelines"]) + len(was_open),
        "pipeline_steps": sum(pages(n, "pipeline_steps") for n in walked),
    }


def expected_records(info: Mapping[str, Any]) -> int:
    """Every record of the workspace: repositories, members, projects, each repository-scoped listing's
    items (pull requests, commits, deployments, environments, pipelines, activity, branches, tags),
    every pipeline's steps and each pull request's comments, commits and files."""
    per_repo, per_pull_request = info["per_repo"], info.get("per_pull_request", {})
    return (info["repositories"] + info["members"] + info.get("projects", 0)
            + sum(sum(per_repo.get(e, [])) for e in REPOSITORY_SCOPED + PIPELINE_SCOPED)
            + sum(sum(per_pull_request.get(e, [])) for e in PULL_REQUEST_SCOPED))


def unchanged_records(info: Mapping[str, Any]) -> int:
    """The records of an incremental sync with nothing changed: the members (full refresh), the
    deployments in progress, every environment (full refresh), each open pipeline with its steps
    (read again until COMPLETED), and the activity entries of each repository's lookback hour."""
    open_steps = info.get("open_pipeline_steps", [])
    return (info["members"] + info["in_progress_deployments"] + sum(info["per_repo"].get("environments", []))
            + len(open_steps) + sum(open_steps) + info.get("activity_lookback", 0))


def count_output(path: Path) -> Dict[str, Any]:
    """Records per stream, the last STATE per stream and the error messages in a connector's stdout."""
    try:
        import orjson

        loads = orjson.loads
    except ImportError:  # pragma: no cover - orjson comes with the CDK
        loads = json.loads
    records: Dict[str, int] = {s: 0 for s in cli.STREAMS}
    states: Dict[str, Any] = {}
    errors: List[str] = []
    with open(path, "rb") as lines:
        for line in lines:
            try:
                message = loads(line)
            except ValueError:
                continue
            kind = message.get("type")
            if kind == "RECORD":
                stream = message["record"]["stream"]
                records[stream] = records.get(stream, 0) + 1
            elif kind == "STATE":
                states[message["state"]["stream"]["stream_descriptor"]["name"]] = message["state"]
            elif kind == "TRACE" and message["trace"].get("type") == "ERROR":
                errors.append(message["trace"]["error"].get("message", ""))
    return {"records": records, "state": list(states.values()), "errors": errors}


class Bench:
    """The runs against one sandbox; files go to ``tmp``."""

    def __init__(self, sandbox: Sandbox, tmp: Path, num_workers: Optional[int], timeout: float):
        self.sandbox, self.tmp, self.timeout = sandbox, tmp, timeout
        info = sandbox.info
        self.config: Dict[str, Any] = {"workspace": info["workspace"], "email": EMAIL, "api_token": TOKEN,
                                       "api_url": info["api_url"], "start_date": START_DATE}
        if num_workers is not None:
            self.config["num_workers"] = num_workers
        self.config_path = self._write("config.json", self.config)

    def _write(self, name: str, content: Any) -> Path:
        path = self.tmp / name
        path.write_text(json.dumps(content))
        return path

    def _measure(self, run: Run, args: Sequence[str], tag: str) -> Path:
        self.sandbox.reset_requests()
        cpu_before = self.sandbox.cpu_seconds()
        out = self.tmp / f"{tag}.out"
        measured = run_measured(args, out, self.tmp / f"{tag}.err", self.timeout)
        cpu_after = self.sandbox.cpu_seconds()
        run.status, run.wall_s, run.cpu_s, run.peak_rss_mb = (measured.status, measured.wall_s, measured.cpu_s,
                                                              measured.peak_rss_mb)
        run.server_cpu_s = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        run.requests = self.sandbox.request_counts()
        if measured.status != "ok":
            tail = (self.tmp / f"{tag}.err").read_text(errors="replace").strip().splitlines()[-3:]
            log(f"{run.name}: {measured.status}; stderr ends with: {' | '.join(tail)}")
        return out

    def startup(self) -> float:
        """Wall time of ``main.py spec``: interpreter + CDK import + start-up, no request."""
        measured = run_measured([sys.executable, str(cli.PROJECT_ROOT / "main.py"), "spec"], self.tmp / "spec.out",
                                self.tmp / "spec.err", self.timeout)
        return measured.wall_s

    def connector(self, name: str, kind: str, catalog: Mapping[str, Any], state=None, expect: Optional[int] = None,
                  profile: Optional[Path] = None, minimum: Optional[str] = None, before: Optional[Mapping[str, Any]] = None):
        """``python main.py read`` (optionally under cProfile); returns the row and the final state.
        ``minimum``: the kind of ``minimum_requests`` (default: full, or incremental with a state)."""
        tag = name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        args = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
        args += [str(cli.PROJECT_ROOT / "main.py"), "read", "--config", str(self.config_path),
                 "--catalog", str(self._write(f"{tag}.catalog.json", catalog))]
        if state is not None:
            args += ["--state", str(self._write(f"{tag}.state.json", state))]
        log(f"{name}: running python main.py read ...")
        run = Run(name, kind, expected_records=expect)
        out = self._measure(run, args, tag)
        parsed = count_output(out)
        run.records_by_stream, run.records = parsed["records"], sum(parsed["records"].values())
        if parsed["errors"] and run.status == "ok":
            run.status = "errors"
        for error in parsed["errors"][:3]:
            log(f"{name}: ERROR {error}")
        run.minimum = minimum_requests(self.sandbox.info, minimum or ("incremental" if state is not None else "full"), before)
        self._check(run)
        log(f"{name}: {run.status}, {run.records} records in {run.wall_s:.1f} s")
        return run, parsed["state"]

    def plain(self) -> Run:
        """The sequential requests loop, in its own process."""
        log("plain loop: running ...")
        run = Run("plain requests loop", "plain", expected_records=expected_records(self.sandbox.info))
        out = self.tmp / "plain.jsonl"
        # The plan is computed in a child: the connector imported here would count in every later child's peak RSS.
        plan = self.tmp / "plain_plan.json"
        subprocess.run([sys.executable, "-m", "integration_tests.benchmark", "--_plan", str(self.config_path), str(plan)],
                       check=True, cwd=cli.PROJECT_ROOT, timeout=self.timeout)
        args = [sys.executable, "-m", "integration_tests.benchmark", "--_plain", str(self.config_path), str(plan),
                str(out)]
        summary = self._measure(run, args, "plain_summary")
        if run.status == "ok":
            run.records_by_stream = json.loads(summary.read_text())
            run.records = sum(run.records_by_stream.values())
        run.minimum = minimum_requests(self.sandbox.info, "full")
        self._check(run)
        log(f"plain loop: {run.status}, {run.records} records in {run.wall_s:.1f} s")
        return run

    @staticmethod
    def _check(run: Run) -> None:
        """Flag (without failing) a record count other than the workspace's."""
        if run.status == "ok" and run.expected_records is not None and run.records != run.expected_records:
            run.status = f"ok, {run.records - run.expected_records:+,d} records vs expected"


def request_plan(config: Mapping[str, Any]) -> Dict[str, Any]:
    """What the plain loop fetches, from the connector's own stream instances (computed in a child
    process of its own, ``--_plan``: the plain loop imports neither the connector nor the CDK, and
    the benchmark's process neither, since a forked child's peak RSS counts the parent's pages).

    ``{"listing": {"path", "params"}, "streams": [{"stream", "per_repository", "path", "params",
    "per_pipeline", "pipelines"}, ...]}``: ``listing`` is the repository listing the repository-scoped
    streams are read for (their parent's first page); ``streams`` are the first pages in full
    refresh, in the registry's order (``first_pages``), with ``PLACEHOLDER_REPOSITORY``'s uuid in the
    path of those read per repository. A stream read per pipeline (``per_pipeline``: pipeline_steps)
    has ``PLACEHOLDER_PIPELINE``'s uuid in its path too, and ``pipelines`` is the first page of the
    repository's pipeline listing (``{"stream", "path", "params"}``) its pipelines come from; one read per
    pull request (``per_pull_request``) has ``PLACEHOLDER_PULL_REQUEST``'s id in its path.
    """
    from integration_tests.first_pages import first_pages
    from source_bitbucket import SourceBitbucket
    from source_bitbucket.streams.repository_scoped import RepositoryScopedStream

    parent = next(s.parent for s in SourceBitbucket().streams(config) if isinstance(s, RepositoryScopedStream))
    listing = {"path": parent.path(stream_slice={}), "params": dict(parent.request_params(stream_state={}, stream_slice={}))}
    pages = first_pages(config, PLACEHOLDER_REPOSITORY, PLACEHOLDER_PIPELINE, PLACEHOLDER_PULL_REQUEST)
    return {"listing": listing, "streams": [page.to_json() for page in pages]}


def plain_loop(config_path: str, plan_path: str, out_path: str) -> None:
    """Child side of ``Bench.plain``: fetch the pages of ``request_plan`` (following ``next``
    verbatim), write JSON lines; records read per repository gain ``repository_uuid`` and
    ``repository_full_name``, records read per pipeline ``pipeline_uuid`` and ``pipeline_created_on``
    too, records read per pull request ``pull_request_id`` and ``pull_request_updated_on``, as the connector's do.
    The per-pull-request streams read each pull request the pull_requests stream's pages listed (comments:
    those with comments); the pull_requests stream comes first in the registry.

    Each listing is read once, as the connector does: the repository listing, and each repository's
    pipeline listing (its pipelines' uuids and dates are kept when the pipelines stream reads it,
    for the per-pipeline stream; read for it otherwise). A 403 or 404 on a repository's first page
    (e.g. Pipelines off) is one request and no records, as the connector skips it; so is a 400 or 555 (a
    diffstat that cannot be computed).

    ``next`` is followed verbatim, except on a stream whose connector builds its next page itself
    (``follows_next`` False: pipelines, pipeline_steps): there the first page's parameters that
    ``next`` dropped are put back (same number of requests). Bitbucket's pipelines ``next`` keeps
    only ``page`` and ``pagelen``: followed verbatim, page 2 on of the ``sort=-created_on`` listing
    come oldest first, so a repository with more than 100 pipelines repeats some and misses others
    (the same count of pipelines, but the steps of the wrong pipelines: at the default scale, 37
    steps too few).
    """
    from urllib.parse import parse_qs, quote, urlsplit

    import requests

    config, plan = json.loads(Path(config_path).read_text()), json.loads(Path(plan_path).read_text())
    session = requests.Session()
    session.auth = (config["email"], config["api_token"])
    base = config["api_url"]
    repository_placeholder, pipeline_placeholder = PLACEHOLDER_REPOSITORY["uuid"], PLACEHOLDER_PIPELINE["uuid"]
    pull_request_placeholder = PLACEHOLDER_PULL_REQUEST["id"]
    pull_requests_read: Dict[str, List[Mapping[str, Any]]] = {}  # repository uuid -> the pull_requests stream's records

    def values(path: str, params: Mapping[str, Any], skip_missing: bool = False, follows_next: bool = True):
        url, first, first_page = f"{base}/{path}", params, True
        while url:
            response = session.get(url, params=params, timeout=120)
            if skip_missing and first_page and response.status_code in (400, 403, 404, 555):
                return  # the first page of a repository's listing: no access, the feature is off, no diff
            response.raise_for_status()
            body = response.json()
            yield from body.get("values", [])
            url, params, first_page = body.get("next"), None, False
            if url and not follows_next and first:  # put back what next dropped (sort, fields)
                kept = parse_qs(urlsplit(url).query)
                params = {name: value for name, value in first.items() if name not in kept} or None

    def key(path: str, params: Mapping[str, Any]) -> str:
        return json.dumps([path, params], sort_keys=True)

    def for_repository(path: str, repository: Mapping[str, Any]) -> str:
        return path.replace(repository_placeholder, quote(repository["uuid"], safe=""))

    listing = plan["listing"]
    repositories = list(values(listing["path"], listing["params"]))  # read once, as the connector does
    # The pipeline listings the per-pipeline streams need: {key(path, params): {repository uuid: [(uuid, created_on)]}}
    wanted = {key(page["pipelines"]["path"], page["pipelines"]["params"]) for page in plan["streams"] if page.get("per_pipeline")}
    pipelines_read: Dict[str, Dict[str, List[Any]]] = {k: {} for k in wanted}

    def pipelines_of(source: Mapping[str, Any], repository: Mapping[str, Any]) -> List[Any]:
        known = pipelines_read.setdefault(key(source["path"], source["params"]), {})
        if repository["uuid"] not in known:
            known[repository["uuid"]] = [(p["uuid"], p.get("created_on"))
                                         for p in values(for_repository(source["path"], repository), source["params"], True,
                                                         source.get("follows_next", True))]
        return known[repository["uuid"]]

    counts: Dict[str, int] = {}
    with open(out_path, "w") as out:
        for page in plan["streams"]:
            stream, path, params = page["stream"], page["path"], page["params"]
            counts[stream] = 0
            if not page["per_repository"]:
                same = (path, params) == (listing["path"], listing["params"])
                for record in repositories if same else values(path, params):
                    out.write(json.dumps(record) + "\n")
                    counts[stream] += 1
                continue
            kept = pipelines_read.get(key(path, params))  # this listing is one a per-pipeline stream needs
            for repository in repositories:
                if page.get("per_pipeline"):
                    pages = [(for_repository(path, repository).replace(pipeline_placeholder, quote(uuid, safe="")),
                              {"pipeline_uuid": uuid, "pipeline_created_on": created_on})
                             for uuid, created_on in pipelines_of(page["pipelines"], repository)]
                elif page.get("per_pull_request"):
                    pages = [(for_repository(path, repository).replace(pull_request_placeholder, str(pr["id"])),
                              {"pull_request_id": pr["id"], "pull_request_updated_on": pr["updated_on"]})
                             for pr in pull_requests_read.get(repository["uuid"], [])
                             if not page.get("with_comments_only") or pr.get("comment_count")]
                else:
                    pages = [(for_repository(path, repository), {})]
                    if kept is not None:
                        kept[repository["uuid"]] = []
                for url_path, extra in pages:
                    for record in values(url_path, params, True, page.get("follows_next", True)):
                        record["repository_uuid"] = repository["uuid"]
                        record["repository_full_name"] = repository["full_name"]
                        record.update(extra)
                        if kept is not None and not page.get("per_pipeline"):
                            kept[repository["uuid"]].append((record["uuid"], record.get("created_on")))
                        if stream == "pull_requests":
                            pull_requests_read.setdefault(repository["uuid"], []).append(
                                {k: record.get(k) for k in ("id", "updated_on", "comment_count")})
                        out.write(json.dumps(record) + "\n")
                        counts[stream] += 1
    print(json.dumps(counts))


# ---------------------------------------------------------------- scenarios
def aged(state: List[Mapping[str, Any]], by: float) -> List[Mapping[str, Any]]:
    """``state`` with every ``checked_on`` (the skip rule's last full read) moved ``by`` seconds back."""
    from source_bitbucket.dates import format_datetime, parse_datetime

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: format_datetime(parse_datetime(v) - timedelta(seconds=by)) if k == "checked_on" and parse_datetime(v)
                    else walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(state)


def benchmark(args: argparse.Namespace, scale: Mapping[str, int], tmp: Path) -> Dict[str, Any]:
    """Plain loop, full sync, incremental syncs (first, then nothing changed), optional profile."""
    log(f"generating the sandbox {dict(scale)} (latency {args.latency_ms} ms) in a child process ...")
    with Sandbox(scale, args.seed, args.latency_ms, args.timeout) as sandbox:
        bench = Bench(sandbox, tmp, args.num_workers, args.timeout)
        expect = expected_records(sandbox.info)
        startup = bench.startup()
        log(f"connector start-up (main.py spec): {startup:.2f} s; {expect} records in the workspace")
        plain = bench.plain()
        full, _ = bench.connector("full sync", "full", full_catalog(), expect=expect)
        incremental_catalog = cli.catalog()
        first, state = bench.connector("incremental, no state", "full", incremental_catalog, expect=expect)
        unchanged_expect = unchanged_records(sandbox.info)
        again, state = bench.connector("incremental, nothing changed", "incremental", incremental_catalog, state=state,
                                       expect=unchanged_expect)
        info = sandbox.info
        weekly, state = bench.connector("incremental, weekly full check", "incremental", incremental_catalog,
                                        state=aged(state, FULL_CHECK_AGE), minimum="weekly",
                                        expect=unchanged_expect + sum(info["per_repo"]["branches"]) + sum(info["per_repo"]["tags"]))
        sandbox.info = sandbox.hour()
        hour, _ = bench.connector("incremental, a typical hour of changes", "incremental", incremental_catalog, state=state,
                                  minimum="changes", before=info)
        result = {"scale": dict(scale), "seed": args.seed, "latency_ms": args.latency_ms,
                  "num_workers": args.num_workers, "startup_s": startup, "runs": [full, first, again, weekly, hour, plain]}
        if args.profile:
            profile_path = tmp / "full_sync.prof"
            bench.connector("full sync (cProfile)", "full", full_catalog(), profile=profile_path)
            result["profile"] = hot_spots(profile_path, args.profile_top)
    return result


def memory_check(args: argparse.Namespace, tmp: Path) -> Dict[str, Any]:
    """A ~20k-record and a ~200k-record full sync; their peak RSS and its ratio (target: within 20%)."""
    runs = []
    for label, scale in MEMORY_SCALES.items():
        log(f"memory check {label}: generating the sandbox {scale} ...")
        with Sandbox(scale, args.seed, args.latency_ms, args.timeout) as sandbox:
            folder = tmp / label.strip("~ ").replace(" ", "_")
            folder.mkdir()
            bench = Bench(sandbox, folder, args.num_workers, args.timeout)
            run, _ = bench.connector(f"full sync, {label}", "full", full_catalog(),
                                     expect=expected_records(sandbox.info))
            runs.append(run)
    ratio = runs[1].peak_rss_mb / runs[0].peak_rss_mb if runs[0].peak_rss_mb else None
    return {"latency_ms": args.latency_ms, "num_workers": args.num_workers, "runs": runs, "rss_ratio": ratio,
            "within_20_percent": ratio is not None and ratio <= 1.2}


def hot_spots(profile_path: Path, top: int) -> Dict[str, List[Dict[str, Any]]]:
    """The ``top`` functions of source_bitbucket / airbyte_cdk by cumulative time, and the ``top``
    functions of any module (pendulum, json, the standard library...) by own time."""
    import pstats

    stats = pstats.Stats(str(profile_path)).stats  # {(file, line, name): (cc, nc, tottime, cumtime, callers)}
    rows = [{"function": f"{_short(path)}:{line}({name})", "cumulative_s": cum, "own_s": own, "calls": calls,
             "project": "source_bitbucket" in path or "airbyte_cdk" in path}
            for (path, line, name), (_, calls, own, cum, _) in stats.items()]
    return {"cumulative": sorted((r for r in rows if r["project"]), key=lambda r: -r["cumulative_s"])[:top],
            "own": sorted(rows, key=lambda r: -r["own_s"])[:top]}


def _short(path: str) -> str:
    for marker in ("source_bitbucket", "airbyte_cdk", "site-packages/", "lib/python3"):
        if marker in path:
            return (marker + path.split(marker, 1)[1]).replace("site-packages/", "").replace("lib/python3", "python3")
    return path


# ---------------------------------------------------------------- output
def _num(value: Optional[float], digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def render_table(result: Mapping[str, Any]) -> str:
    """The markdown table of one benchmark (plus a header line and a legend)."""
    runs: List[Run] = result["runs"]
    plain = next((r for r in runs if r.kind == "plain"), None)
    header = ["run", "status", *ENDPOINTS, "req/min", "records", "records/s", "wall s", "CPU s", "server CPU s",
              "peak RSS MB", "wall vs plain", "records/s vs plain"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        cells = [run.name, run.status]
        cells += [f"{run.requests.get(e, 0)} (×{_num(run.ratio(e))})" for e in ENDPOINTS]
        cells += [_num(run.ratio()), f"{run.records:,}", f"{run.records_per_s:,.0f}", _num(run.wall_s),
                  _num(run.cpu_s), _num(run.server_cpu_s), f"{run.peak_rss_mb:.0f}"]
        comparable = plain is not None and plain.wall_s and run.kind in ("full", "plain")  # the same work
        cells += [_num(run.wall_s / plain.wall_s) if comparable else "—",
                  _num(run.records_per_s / plain.records_per_s) if comparable and plain.records_per_s else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    scale = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in result["scale"].items())
    workers = result["num_workers"] or "connector default"
    title = (f"Scale: {scale}; latency {result['latency_ms']} ms; num_workers {workers}; {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}.")
    legend = ("Endpoint cells: requests (× the minimum possible). req/min: all requests / minimum. Wall time is "
              f"spawn to exit, including interpreter start-up ({result['startup_s']:.2f} s for `main.py spec`). "
              "CPU s and peak RSS are the measured process's; server CPU s is the sandbox's during the run.")
    text = "\n".join([title, "", *lines, "", legend])
    for key, title in (("cumulative", "source_bitbucket / airbyte_cdk functions by cumulative time"),
                       ("own", "functions by own time")):
        if result.get("profile"):
            text += f"\n\nTop {title} (full sync under cProfile, main thread only):\n\n"
            text += "| cumulative s | own s | calls | function |\n|---|---|---|---|\n"
            text += "\n".join(f"| {p['cumulative_s']:.2f} | {p['own_s']:.2f} | {p['calls']:,} | `{p['function']}` |"
                              for p in result["profile"][key])
    return text


def render_memory(result: Mapping[str, Any]) -> str:
    """The markdown table of the memory check."""
    lines = ["| run | status | records | wall s | peak RSS MB |", "|---|---|---|---|---|"]
    lines += [f"| {r.name} | {r.status} | {r.records:,} | {r.wall_s:.2f} | {r.peak_rss_mb:.1f} |"
              for r in result["runs"]]
    verdict = "within" if result["within_20_percent"] else "NOT within"
    lines += ["", f"Peak RSS ratio (~200k / ~20k records): {_num(result['rss_ratio'])} ({verdict} the 20% target); "
                  f"latency {result['latency_ms']} ms, num_workers {result['num_workers'] or 'connector default'}."]
    return "\n".join(lines)


def to_json(result: Mapping[str, Any]) -> Dict[str, Any]:
    out = dict(result)
    out["runs"] = [{**asdict(r), "records_per_s": r.records_per_s, "requests_over_minimum": r.ratio(),
                    "requests_over_minimum_by_endpoint": {e: r.ratio(e) for e in ENDPOINTS}} for r in result["runs"]]
    return out


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m integration_tests.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=40)
    parser.add_argument("--pull-requests", type=int, default=20000)
    parser.add_argument("--commits", type=int, default=100000)
    parser.add_argument("--deployments", type=int, default=5000)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=int, default=0, help="sleep the sandbox adds to every API request")
    parser.add_argument("--num-workers", type=int, default=None, help='passed to the connector as "num_workers"')
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed to each measured process")
    parser.add_argument("--memory-check", action="store_true",
                        help="instead: a ~20k- and a ~200k-record full sync, and their peak RSS ratio")
    parser.add_argument("--profile", action="store_true", help="also run the full sync under cProfile")
    parser.add_argument("--profile-top", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print JSON on stdout (the table goes to stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the output files (their folder is logged)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark; exit 0 when every measured process succeeded (record counts other than
    expected are flagged in the table, not failed), else 1."""
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bitbucket-bench-"))
    try:
        if args.memory_check:
            result = memory_check(args, tmp)
            text = render_memory(result)
        else:
            scale = {"repositories": args.repositories, "pull_requests": args.pull_requests, "commits": args.commits,
                     "deployments": args.deployments, "members": args.members}
            result = benchmark(args, scale, tmp)
            text = render_table(result)
    finally:
        if args.keep:
            log(f"output files kept in {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(to_json(result), indent=1))
    else:
        print(text)
    return 0 if all(r.status.startswith("ok") for r in result["runs"]) else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--_serve"]:
        _serve(json.loads(sys.argv[2]))
    elif sys.argv[1:2] == ["--_plan"]:
        Path(sys.argv[3]).write_text(json.dumps(request_plan(json.loads(Path(sys.argv[2]).read_text()))))
    elif sys.argv[1:2] == ["--_plain"]:
        plain_loop(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(main())
