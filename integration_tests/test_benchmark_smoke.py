"""The benchmark script works (not how fast): a tiny run prints the table with numeric ratios."""

from __future__ import annotations

import json
import subprocess
import sys

from integration_tests import benchmark
from integration_tests.connector_cli import PROJECT_ROOT

TINY_SCALE = {"repositories": 3, "pull_requests": 12, "commits": 24, "deployments": 6, "members": 4}
TINY = [*(arg for name, value in TINY_SCALE.items() for arg in (f"--{name.replace('_', '-')}", str(value))),
        "--latency-ms", "0", "--timeout", "60"]


def table_rows(stdout: str):
    """The markdown table's header and data rows, as lists of cells."""
    lines = [line for line in stdout.splitlines() if line.startswith("| run |") or line.startswith("| ")]
    start = next(i for i, line in enumerate(lines) if line.startswith("| run |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(header):
            break
        rows.append(dict(zip(header, cells)))
    return header, rows


def tiny_info():
    """The tiny sandbox's info line (item counts), from the benchmark's own sandbox process (seed 1)."""
    with benchmark.Sandbox(TINY_SCALE, seed=1, latency_ms=0, timeout=60) as sandbox:
        return sandbox.info


def test_tiny_run_prints_the_table():
    info = tiny_info()
    # The tiny sandbox has the pipeline streams' records too: the totals come from its item counts.
    assert sum(info["per_repo"]["environments"]) and sum(info["per_repo"]["pipelines"]) and info["per_repo"]["pipeline_steps"]
    completed = subprocess.run([sys.executable, "-m", "integration_tests.benchmark", *TINY], capture_output=True,
                               text=True, timeout=120, cwd=PROJECT_ROOT)
    assert completed.returncode == 0, completed.stderr[-2000:]
    header, rows = table_rows(completed.stdout)
    wanted = {"req/min", "records", "records/s", "wall s", "peak RSS MB", "wall vs plain", *benchmark.ENDPOINTS}
    assert wanted <= set(header)
    assert [r["run"] for r in rows] == ["full sync", "incremental, no state", "incremental, nothing changed",
                                        "incremental, weekly full check", "incremental, a typical hour of changes",
                                        "plain requests loop"]
    for row in rows:
        assert row["status"].startswith("ok"), row
        assert float(row["req/min"]) >= 1.0, row
        for endpoint in benchmark.ENDPOINTS:  # "3 (×1.00)": requests, then requests / minimum
            requests, ratio = row[endpoint].split(" (×")
            assert int(requests) >= (0 if row["run"].startswith("incremental, ") and row["run"] != "incremental, no state" else 1), row
            assert float(ratio.rstrip(")")) > 0, row
        assert float(row["peak RSS MB"]) > 0 and float(row["wall s"]) > 0
    full, first, unchanged, weekly, hour, plain = rows
    assert weekly["commits"] == "3 (×1.00)" and hour["req/min"] == "1.00", (weekly, hour)  # one request per repository
    pipelines, steps = sum(info["per_repo"]["pipelines"]), sum(info["per_repo"]["pipeline_steps"])
    reviews = (sum(sum(info["per_repo"][e]) for e in ("pull_request_activity", "branches", "tags")) + info["projects"]
               + sum(sum(counts) for counts in info["per_pull_request"].values()))
    assert reviews and all(sum(counts) for counts in info["per_pull_request"].values())
    total = 3 + 12 + 24 + 6 + 4 + sum(info["per_repo"]["environments"]) + pipelines + steps + reviews
    assert benchmark.expected_records(info) == total
    for row in (full, first, plain):
        assert int(row["records"].replace(",", "")) == total, row
    open_steps = info["open_pipeline_steps"]
    again = (4 + info["in_progress_deployments"] + sum(info["per_repo"]["environments"]) + len(open_steps) + sum(open_steps)
             + info["activity_lookback"])
    assert benchmark.unchanged_records(info) == again
    assert int(unchanged["records"].replace(",", "")) == again, unchanged
    assert float(full["wall vs plain"]) > 0 and float(full["records/s vs plain"]) > 0
    assert "[benchmark" in completed.stderr  # progress goes to stderr, not into the table


def test_minimum_requests():
    info = {"repositories": 3, "members": 101,
            "per_repo": {"pullrequests": [0, 50, 51], "commits": [0, 100, 250], "deployments": [0, 1, 100],
                         "environments": [0, 3, 101], "pipelines": [0, 100, 201],  # 0: e.g. Pipelines off (a 404)
                         "pipeline_steps": [1, 4, 0, 101] + [2] * 297,  # per pipeline (301 pipelines)
                         "pull_request_activity": [0, 50, 51], "branches": [1, 100, 101], "tags": [0, 0, 3]},
            "per_pull_request": {"pull_request_comments": [1, 101], "pull_request_commits": [0, 2],
                                 "pull_request_diffstat": [0, 501]},
            "projects": 51, "in_progress_deployments": 1, "open_pipeline_steps": [4, 101, 0]}
    assert benchmark.minimum_requests(info, "full") == {
        "repositories": 1, "members": 2, "pullrequests": 1 + 1 + 2, "commits": 1 + 1 + 3, "deployments": 1 + 1 + 1,
        "environments": 1 + 1 + 2, "pipelines": 1 + 1 + 3, "pipeline_steps": 1 + 1 + 1 + 2 + 297,
        "pull_request_activity": 1 + 1 + 2, "branches": 1 + 1 + 2, "tags": 1 + 1 + 1, "projects": 2,
        "pull_request_comments": 1 + 2, "pull_request_commits": 1 + 1,
        "pull_request_diffstat": (1 + 1) + (1 + 2)}  # the 302, then the pages
    assert benchmark.minimum_requests(info, "incremental") == {
        "repositories": 1, "members": 2, "pullrequests": 3, "commits": 0, "deployments": 3,
        "environments": 1 + 1 + 2,  # full refresh: every page again
        "pipelines": 3 + 3,  # one page per repository, one GET per open pipeline
        "pipeline_steps": 1 + 2 + 1,  # one walk per open pipeline
        "pull_request_activity": 3, "projects": 1,  # the first page of each feed, of the projects
        "branches": 0, "tags": 0, "pull_request_comments": 0, "pull_request_commits": 0, "pull_request_diffstat": 0}
    assert set(benchmark.minimum_requests(info, "full")) == set(benchmark.ENDPOINTS)


def test_minimum_requests_of_the_weekly_check_and_of_changes():
    before = {"repositories": 2, "members": 1, "projects": 1,
              "per_repo": {"pullrequests": [3, 1], "commits": [10, 150], "deployments": [0, 1], "environments": [1, 1],
                           "pipelines": [2, 0], "pipeline_steps": [3, 4], "pull_request_activity": [5, 60],
                           "branches": [2, 101], "tags": [0, 1]},
              "per_pull_request": {}, "in_progress_deployments": 0, "open_pipeline_steps": [4],
              "repository_updated_on": [1, 1], "pull_requests": [[0, 1, 7, None, 1, 1], [1, 1, 7, 2, 1, 600]],
              "pipeline_list": [["p1", "COMPLETED", 3], ["p2", "IN_PROGRESS", 4]]}
    weekly = benchmark.minimum_requests(before, "weekly")
    assert (weekly["commits"], weekly["branches"], weekly["tags"]) == (2, 1 + 2, 1 + 1)  # one each, every ref page
    after = {**before, "per_repo": {**before["per_repo"], "commits": [10, 352], "branches": [2, 102],
                                    "pull_request_activity": [5, 112], "pipeline_steps": [3, 4, 2]},
             "repository_updated_on": [1, 2],  # pushed to the second repository only
             "pull_requests": [[0, 1, 7, None, 1, 1], [1, 1, 8, 2, 1, 600], [1, 2, 8, None, 150, 3]],
             "pipeline_list": [["p1", "COMPLETED", 3], ["p2", "COMPLETED", 4], ["p3", "COMPLETED", 2]]}
    changes = benchmark.minimum_requests(after, "changes", before)
    assert changes["commits"] == 3 and changes["branches"] == 2 and changes["tags"] == 1  # 202 new; 102 refs; 1 tag
    assert changes["pullrequests"] == 1 + 1 and changes["pull_request_activity"] == 1 + 2  # 0 and 2 changed; 0 and 52 new
    assert changes["pull_request_comments"] == 1 and changes["pull_request_commits"] == 1 + 2
    assert changes["pull_request_diffstat"] == (2 + 1) + (1 + 1)  # the pages, and each one's 302
    assert changes["pipelines"] == 2 + 1 and changes["pipeline_steps"] == 1 + 1  # p2 was open, p3 is new
    assert changes["deployments"] == 2 and changes["members"] == 1 and changes["projects"] == 1


def test_aged_moves_every_checked_on_back_and_nothing_else():
    state = [{"type": "STREAM", "stream": {"stream_state": {"{a}": {"checked_on": "2026-12-03T00:00:00.000000+00:00",
                                                                     "date": "2026-12-01T00:00:00Z"}, "other": 1}}}]
    aged = benchmark.aged(state, 86400)
    entry = aged[0]["stream"]["stream_state"]["{a}"]
    assert entry == {"checked_on": "2026-12-02T00:00:00.000000+00:00", "date": "2026-12-01T00:00:00Z"}
    assert aged[0]["stream"]["stream_state"]["other"] == 1 and state[0]["stream"]["stream_state"]["{a}"]["checked_on"].startswith("2026-12-03")


def test_expected_records():
    info = {"repositories": 3, "members": 5,
            "per_repo": {"pullrequests": [1, 2, 3], "commits": [4, 5, 6], "deployments": [0, 1, 2],
                         "environments": [0, 3, 3], "pipelines": [0, 2, 1], "pipeline_steps": [1, 4, 2]},
            "in_progress_deployments": 1, "open_pipeline_steps": [4]}
    assert benchmark.expected_records(info) == 3 + 5 + 6 + 15 + 3 + 6 + 3 + 7
    assert benchmark.unchanged_records(info) == 5 + 1 + 6 + 1 + 4  # members, deployments, environments, open ones


def test_json_output_is_machine_readable():
    run = benchmark.Run("full sync", "full", wall_s=2.0, records=10, requests={e: 2 for e in benchmark.ENDPOINTS},
                        minimum={e: 1 for e in benchmark.ENDPOINTS})
    out = json.loads(json.dumps(benchmark.to_json({"runs": [run]})))
    assert out["runs"][0]["requests_over_minimum"] == 2.0
    assert out["runs"][0]["records_per_s"] == 5.0
