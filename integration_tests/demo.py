"""Try the connector offline: ``python -m integration_tests.demo``.

Starts the sandbox on 127.0.0.1, runs ``python main.py read`` on every stream, changes some data,
reads again with the state of the first run, and prints records, states and requests per stream.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, Mapping
from urllib.parse import urlsplit

from integration_tests import connector_cli as cli
from integration_tests.first_pages import first_pages
from integration_tests.sandbox import SandboxServer, generate_workspace
from integration_tests.sandbox.resources import endpoint_kind

EXAMPLE_REPOSITORY = {"uuid": "{00000000-0000-0000-0000-000000000000}", "full_name": "ws/x", "slug": "x"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repositories", type=int, default=10)
    parser.add_argument("--show-state", action="store_true", help="print the final state of each run")
    args = parser.parse_args()
    workspace = generate_workspace(seed=args.seed, repositories=args.repositories)
    with SandboxServer(workspace) as server:
        config = {"workspace": workspace.slug, "email": "dev@example.com", "api_token": "sandbox-token", "api_url": server.api_url}
        print(f"sandbox: {server.api_url} (workspace {workspace.slug})\n")
        first = _sync("1st sync (no state)", config, None, server, args.show_state)
        slugs = [r["slug"] for r in workspace.records("repositories") if r["mainbranch"]]
        workspace.add_pull_request(slugs[0])
        workspace.push_commits(slugs[1], 3)
        workspace.push_late_branch(slugs[2], 3, days_old=400)
        workspace.add_deployment(slugs[3], state="COMPLETED")
        workspace.update_repository(slugs[4])
        pipelines = pipeline_changes(workspace)
        merged = next((r.slug, pr.id) for r in workspace.repositories for pr in r.pull_requests
                      if pr.state == "OPEN" and pr.close_source_branch and (r.uuid, pr.id) not in workspace.diffstat_errors)
        workspace.update_pull_request(*merged)  # merged, its source branch deleted: its commits list is empty now
        review = review_changes(workspace)
        print(
            f"changed in the sandbox: a new pull request in {slugs[0]} (with its commit), 3 commits pushed to {slugs[1]}, "
            f"a 400-day-old branch of 3 commits merged into {slugs[2]}, a deployment in {slugs[3]}, {slugs[4]} updated; "
            f"in {pipelines['repository']}: a running pipeline completed, a halted one resumed, 2 new pipelines "
            f"(one custom, with variables); pull request #{merged[1]} of {merged[0]} merged and its branch deleted; "
            f"a comment on pull request #{review['commented']['id']} of {review['commented']['repository']} (closed), "
            f"edited; a comment of #{review['deleted']['id']} of {review['deleted']['repository']} deleted; "
            f"tags {review['tag']['name']} and {review['lightweight_tag']['name']} (lightweight) in "
            f"{review['tag']['repository']}; project {review['project']['key']} edited\n"
        )
        _sync("2nd sync (with the 1st sync's state)", config, first.final_state(), server, args.show_state)


def pipeline_changes(workspace) -> Dict[str, Any]:
    """The demo's pipeline changes between two syncs, in the repository with the most pipelines: its
    RUNNING pipeline completes (SUCCESSFUL), its HALTED one resumes (RUNNING), and two new pipelines arrive
    (a plain one, COMPLETED, and a custom one with variables, COMPLETED). Returns the mutations' results:
    ``{"repository", "completed", "resumed", "added": [two results]}``."""
    repo = max(workspace.repositories, key=lambda r: len(r.pipelines))
    running = next(p for p in workspace.pipelines_in("IN_PROGRESS", "RUNNING") if p["repository"] == repo.slug)
    halted = next(p for p in workspace.pipelines_in("IN_PROGRESS", "HALTED") if p["repository"] == repo.slug)
    return {
        "repository": repo.slug,
        "completed": workspace.complete_pipeline(repo.slug, running["uuid"]),
        "resumed": workspace.resume_pipeline(repo.slug, halted["uuid"]),
        "added": [workspace.add_pipeline(repo.slug), workspace.add_pipeline(repo.slug, custom_variables=True)],
    }


def review_changes(workspace) -> Dict[str, Any]:
    """The demo's code-review changes between two syncs: a comment on an old, closed pull request (new
    activity) which is then edited, another comment deleted (it stays, ``deleted: true``), an annotated and
    a lightweight tag on the main branch of the repository with the most pull requests, and a project
    edited. Returns the mutations' results: ``{"commented", "edited", "deleted", "tag", "lightweight_tag",
    "project"}``."""
    closed = [(r.slug, pr.id) for r in workspace.repositories for pr in r.pull_requests
              if pr.state != "OPEN" and pr.comment_count >= 2]
    tagged = max((r for r in workspace.repositories if r.main_head() is not None), key=lambda r: len(r.pull_requests))
    return {
        "commented": workspace.update_pull_request(*closed[0]),
        "edited": workspace.edit_comment(*closed[0]),
        "deleted": workspace.delete_comment(*closed[1]),
        "tag": workspace.add_tag(tagged.slug),
        "lightweight_tag": workspace.add_tag(tagged.slug, lightweight=True),
        "project": workspace.update_project(workspace.projects[0].key),
    }


def endpoints(config: Mapping[str, Any]) -> Dict[str, str]:
    """``{stream: endpoint kind}`` in the registry's order: the sandbox's ``endpoint_kind`` of each
    stream's first page (for a repository-scoped stream, the page of an example repository)."""
    api_path = urlsplit(config["api_url"]).path.rstrip("/")
    return {page.stream: endpoint_kind(f"{api_path}/{page.path}") for page in first_pages(config, EXAMPLE_REPOSITORY)}


def _sync(title: str, config, state, server, show_state: bool) -> cli.SyncResult:
    server.reset_requests()
    result = cli.run("read", config, cli.catalog(), state=state)
    requests = server.request_counts()
    print(title, "- exit code", result.returncode)
    print(f"  {'stream':<24}{'records':>8}{'states':>8}   requests")
    states = {}
    for stream in result.states:
        name = stream["stream"]["stream_descriptor"]["name"]
        states[name] = states.get(name, 0) + 1
    for stream, endpoint in endpoints(config).items():
        print(f"  {stream:<24}{len(result.records[stream]):>8}{states.get(stream, 0):>8}   {requests.get(endpoint, 0)} x {endpoint}")
    for error in result.errors:
        print("  ERROR:", error.get("message"))
    if show_state:
        print(json.dumps(result.final_state(), indent=1))
    print()
    return result


if __name__ == "__main__":
    main()
