"""Pins the Bitbucket sandbox's API rules with plain ``requests`` against a live SandboxServer."""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from integration_tests.sandbox import ALL_SCOPES, FAULT_KINDS, SandboxServer, generate_workspace, resources

EMAIL, TOKEN = "dev@example.com", "sandbox-token"
US_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
COMMIT_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
DEPLOY_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{5,6}Z$")
NAIVE_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")


@pytest.fixture
def ws():
    return generate_workspace(seed=1)


@pytest.fixture
def server(ws):
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN) as srv:
        yield srv


@pytest.fixture
def http():
    with requests.Session() as session:
        session.auth = (EMAIL, TOKEN)
        yield session


def busiest(ws):
    return max(ws.repositories, key=lambda r: len(r.pull_requests))


def walk(http, url, params=None):
    """Follow ``next`` verbatim; return (values, pages)."""
    pages, values = [], []
    while url:
        resp = http.get(url, params=params)
        assert resp.status_code == 200, resp.text
        pages.append(resp.json())
        values += pages[-1]["values"]
        url, params = pages[-1].get("next"), None
    return values, pages


def _dt(text):
    """Parse any of the sandbox's date formats (Z, +00:00, no offset) to an aware datetime."""
    if text.endswith("Z"):
        return datetime.fromisoformat(text[:-1] + "+00:00")
    return datetime.fromisoformat(text if "+" in text[19:] else text + "+00:00")


# ------------------------------------------------------------------ generated data
def test_generated_workspace_counts_shapes_and_dates(ws):
    streams = ("repositories", "pull_requests", "commits", "deployments", "workspace_users")
    assert [len(ws.records(s)) for s in streams] == [10, 300, 600, 60, 12]
    repos = ws.records("repositories")
    empty = [r for r in repos if r["mainbranch"] is None]
    assert empty and all(r["parent"] is None and r["website"] is None and r["uuid"].startswith("{") for r in repos)
    assert not [c for c in ws.records("commits") if c["repository"]["uuid"] == empty[0]["uuid"]]
    assert any(r["language"] == "" for r in repos) and all(US_DATE.match(r["created_on"]) for r in repos)
    prs = ws.records("pull_requests")
    states = {s: sum(p["state"] == s for p in prs) for s in ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")}
    assert states["MERGED"] > states["OPEN"] > 0 and states["DECLINED"] > 0 and 1 <= states["SUPERSEDED"] <= 2
    for repo in ws.repositories:
        assert [p.id for p in repo.pull_requests] == list(range(1, len(repo.pull_requests) + 1))
    for p in prs:
        assert (p["merge_commit"] is not None) == (p["state"] == "MERGED")
        assert (p["closed_by"] is None) == (p["state"] == "OPEN")
        assert len(p["source"]["commit"]["hash"]) == 12 and US_DATE.match(p["updated_on"])
    commits = ws.records("commits")
    assert all(len(c["hash"]) == 40 and COMMIT_DATE.match(c["date"]) for c in commits)
    assert any("user" not in c["author"] for c in commits) and any(len(c["parents"]) == 2 for c in commits)
    deps = ws.records("deployments")
    undeployed = [d for d in deps if d["state"]["name"] == "UNDEPLOYED"]
    assert undeployed and all(d["state"]["status"] == {} and "started_on" not in d["state"] for d in undeployed)
    assert any("release" not in d for d in deps) and all(set(d["environment"]) == {"uuid"} for d in deps)
    done = [d for d in deps if d["state"]["name"] == "COMPLETED"]
    assert all(DEPLOY_DATE.match(d["state"]["completed_on"]) and DEPLOY_DATE.match(d["last_update_time"]) for d in done)
    members = ws.records("workspace_users")
    assert {m["user"]["type"] for m in members} == {"user", "app_user"}
    assert any("added_on" not in m for m in members) and any(m.get("last_accessed", 1) is None for m in members)
    assert all(NAIVE_DATE.match(m["added_on"]) for m in members if "added_on" in m)
    now = ws.now
    dates = [r["updated_on"] for r in repos] + [p["updated_on"] for p in prs] + [c["date"] for c in commits]
    dates += [d["last_update_time"] for d in deps if "last_update_time" in d]
    assert max(_dt(d) for d in dates) <= now
    assert generate_workspace(seed=1).records("commits") == commits  # deterministic


def test_in_progress_deployment_and_completion(ws):
    repo = busiest(ws)
    uuid = ws.add_deployment(repo.slug, state="IN_PROGRESS")["uuid"]
    dep = next(d for d in ws.records("deployments") if d["uuid"] == uuid)
    assert dep["state"]["name"] == "IN_PROGRESS" and "completed_on" not in dep["state"]
    ws.complete_deployment(repo.slug, uuid)
    dep = next(d for d in ws.records("deployments") if d["uuid"] == uuid)
    assert dep["state"]["status"]["name"] == "SUCCESSFUL" and DEPLOY_DATE.match(dep["state"]["completed_on"])


# ------------------------------------------------------------------ auth, routing
def test_auth_required_and_lookups(server, http, ws):
    url = f"{server.api_url}/repositories/{ws.slug}"
    for auth in (None, (EMAIL, "wrong")):
        resp = requests.get(url, auth=auth)
        assert resp.status_code == 401 and resp.headers["Content-Type"].startswith("text/plain")
    assert http.get(f"{server.api_url}/workspaces/{ws.slug}").json()["slug"] == ws.slug
    assert http.get(f"{server.api_url}/user").json()["uuid"] == ws.owner.uuid
    assert http.get(f"{server.api_url}/workspaces/nope").status_code == 404
    missing = http.get(f"{url}/no-such-repo")
    assert missing.status_code == 404 and missing.json()["type"] == "error"
    assert http.get(f"{server.api_url}/no/such/path").status_code == 404
    repo = busiest(ws)
    by_uuid = f"{url}/{repo.uuid.replace('{', '%7B').replace('}', '%7D')}"
    assert http.get(by_uuid).json()["slug"] == repo.slug
    for sub in ("pullrequests", "commits", "deployments"):
        assert http.get(f"{by_uuid}/{sub}").json()["values"] == http.get(f"{url}/{repo.slug}/{sub}").json()["values"]


@pytest.mark.parametrize("path,cap,default", [
    ("", 100, 10), ("/{repo}/pullrequests", 50, 10), ("/{repo}/commits", 100, 30), ("/{repo}/deployments", 100, 10),
    ("MEMBERS", 100, 10),
])
def test_pagelen_caps(server, http, ws, path, cap, default):
    url = f"{server.api_url}/workspaces/{ws.slug}/members" if path == "MEMBERS" else \
        f"{server.api_url}/repositories/{ws.slug}" + path.format(repo=busiest(ws).slug)
    assert http.get(url).json()["pagelen"] == default
    assert http.get(url, params={"pagelen": cap}).status_code == 200
    for bad in (cap + 1, 0):
        resp = http.get(url, params={"pagelen": bad})
        assert resp.status_code == 400 and resp.json() == {"type": "error", "error": {"message": "Invalid pagelen"}}


# ------------------------------------------------------------------ pull requests, q, sort, next
def test_pull_requests_default_open_and_repeated_state(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pullrequests"
    values, _ = walk(http, url)
    assert values and {p["state"] for p in values} == {"OPEN"}
    everything, _ = walk(http, url, {"state": ["OPEN", "MERGED", "DECLINED", "SUPERSEDED"], "pagelen": 50})
    assert [p["id"] for p in everything] == [p.id for p in repo.pull_requests]
    assert http.get(url, params={"state": "BOGUS"}).status_code == 400


@pytest.mark.parametrize("query", [
    "updated_on%3E2026-09-01T00:00:00.000000%2B00:00",   # no spaces, + sent as %2B
    "updated_on+%3E+2026-09-01T00%3A00%3A00%2B00%3A00",  # spaces (form-encoded as +)
    "updated_on%20%3E%20%222026-09-01T00:00:00%22",     # quoted, no offset = UTC
    "updated_on%3E2026-09-01",                           # date only
])
def test_q_updated_on_encodings(server, http, ws, query):
    repo = busiest(ws)
    states = "&".join(f"state={s}" for s in ("OPEN", "MERGED", "DECLINED", "SUPERSEDED"))
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pullrequests?q={query}&{states}&pagelen=20"
    values, pages = walk(http, url)
    cutoff = _dt("2026-09-01T00:00:00+00:00")
    expected = [p["id"] for p in ws.records("pull_requests") if p["destination"]["repository"]["uuid"] == repo.uuid
                and _dt(p["updated_on"]) > cutoff]
    assert 0 < len(values) == len(expected) and sorted(p["id"] for p in values) == sorted(expected)
    repos, _ = walk(http, f"{server.api_url}/repositories/{ws.slug}?q={query}")
    assert {r["slug"] for r in repos} == {r["slug"] for r in ws.records("repositories") if _dt(r["updated_on"]) > cutoff}


def test_q_errors_and_sort(server, http, ws):
    url = f"{server.api_url}/repositories/{ws.slug}"
    for bad in ("updated_on > ", "updated_on >> 2024-01-01", "updated_on > 2024-01-01T00:00:00 00:00", "nonsense_field > 1"):
        resp = http.get(url, params={"q": bad})
        assert resp.status_code == 400 and resp.json()["type"] == "error", bad
    ups = [r["updated_on"] for r in walk(http, url, {"sort": "updated_on", "pagelen": 3})[0]]
    downs = [r["updated_on"] for r in walk(http, url, {"sort": "-updated_on", "pagelen": 100})[0]]
    assert ups == sorted(ups) and downs == sorted(ups, reverse=True) and len(ups) == 10
    values = http.get(url, params={"q": 'updated_on >= 2020-01-01 AND (name ~ "api" OR slug = "docs-site")'}).json()["values"]
    assert {r["slug"] for r in values} == {"api-gateway", "docs-site"}


def test_next_links_are_absolute_and_carry_every_param(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pullrequests"
    params = {"q": "updated_on > 2020-01-01T00:00:00+00:00", "sort": "-updated_on", "pagelen": 7,
              "state": ["MERGED", "DECLINED"], "fields": "+values.participants"}
    values, pages = walk(http, url, params)
    assert len(pages) > 2 and len(values) == sum(p.state in ("MERGED", "DECLINED") for p in repo.pull_requests)
    for number, page in enumerate(pages[:-1], start=1):
        split = urlsplit(page["next"])
        assert page["next"].startswith(server.api_url + "/") and split.path.endswith("/pullrequests")
        query = parse_qs(split.query)
        assert query["state"] == ["MERGED", "DECLINED"] and query["q"] == [params["q"]] and query["pagelen"] == ["7"]
        assert query["sort"] == ["-updated_on"] and query["fields"] == ["+values.participants"]
        assert query["page"] == [str(number + 1)] and page["page"] == number and page["size"] == len(values)
    assert "next" not in pages[-1]


def test_links_are_built_from_the_host_header_as_sent(server, http, ws):
    repo = busiest(ws)
    local = f"http://localhost:{server.port}/2.0"
    first = http.get(f"{local}/repositories/{ws.slug}", params={"pagelen": 3})
    assert first.status_code == 200 and first.json()["next"].startswith(f"{local}/repositories/{ws.slug}?")
    second = http.get(first.json()["next"]).json()
    assert second["previous"].startswith(f"{local}/repositories/{ws.slug}?") and second["next"].startswith(local)
    value = first.json()["values"][0]
    assert value["links"]["self"]["href"] == f"{local}/repositories/{ws.slug}/{value['slug']}"
    assert value["links"]["html"]["href"].startswith("https://bitbucket.org/")  # web links stay on bitbucket.org
    prs = http.get(f"{local}/repositories/{ws.slug}/{repo.slug}/pullrequests",
                   params={"fields": "+values.reviewers", "state": "MERGED"}).text
    assert "api.bitbucket.org" not in prs and "127.0.0.1" not in prs and f'"{local}/' in prs
    proxied = http.get(f"{server.api_url}/repositories/{ws.slug}", params={"pagelen": 3},
                       headers={"Host": "bitbucket.internal:8443"}).json()
    assert proxied["next"].startswith(f"http://bitbucket.internal:8443/2.0/repositories/{ws.slug}?")
    assert proxied["values"][0]["links"]["self"]["href"].startswith("http://bitbucket.internal:8443/2.0/")
    assert ws.records("repositories", local)[0] == value  # ground truth with the same base
    assert ws.records("repositories")[0]["links"]["self"]["href"].startswith("https://api.bitbucket.org/2.0/")


# ------------------------------------------------------------------ fields= (partial responses)
def test_generated_pull_requests_have_realistic_participants_and_reviewers(ws):
    prs = ws.records("pull_requests")  # ground truth: whole objects, as GET .../pullrequests/{id} answers
    assert sum(bool(p["reviewers"]) for p in prs) > len(prs) / 2 and any(not p["reviewers"] for p in prs)
    roles = {x["role"] for p in prs for x in p["participants"]}
    assert roles == {"REVIEWER", "PARTICIPANT"}
    for p in prs:
        reviewers = [x["user"] for x in p["participants"] if x["role"] == "REVIEWER"]
        assert p["reviewers"] == reviewers and p["author"]["uuid"] not in {u["uuid"] for u in reviewers}
        for x in p["participants"]:
            assert x["type"] == "participant" and x["user"]["type"] == "user" and isinstance(x["approved"], bool)
            assert x["state"] in (None, "approved", "changes_requested") and (x["state"] == "approved") == x["approved"]
            assert x["participated_on"] is None or (US_DATE.match(x["participated_on"])
                                                    and _dt(x["participated_on"]) <= _dt(p["updated_on"]))
    assert any(x["participated_on"] is None for p in prs for x in p["participants"])
    assert generate_workspace(seed=1).records("pull_requests") == prs  # deterministic


def test_pull_request_collection_leaves_out_participants_and_reviewers_unless_added(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pullrequests"
    everything = {"state": ["OPEN", "MERGED", "DECLINED", "SUPERSEDED"], "pagelen": 50}
    truth = {p["id"]: p for p in ws.records("pull_requests", server.api_url) if p["destination"]["repository"]["uuid"] == repo.uuid}
    plain, _ = walk(http, url, everything)
    assert plain and all("participants" not in p and "reviewers" not in p for p in plain)
    assert all(p == {k: v for k, v in truth[p["id"]].items() if k not in ("participants", "reviewers")} for p in plain)
    added, pages = walk(http, url, {**everything, "fields": "+values.participants,+values.reviewers"})
    assert added == [truth[p["id"]] for p in plain] and any(p["reviewers"] for p in added)
    assert {"next", "page", "pagelen", "size"} <= set(pages[0])  # + keeps the page wrapper
    one, _ = walk(http, url, {**everything, "fields": "+values.reviewers"})
    assert all("reviewers" in p and "participants" not in p for p in one)
    single = http.get(f"{url}/{plain[0]['id']}").json()  # the self URL includes them
    assert single == truth[plain[0]["id"]] and "participants" in single and "reviewers" in single


def test_fields_removal_whitelist_and_wildcards(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pullrequests"
    removed = http.get(url, params={"fields": "-values.links,-values.summary,-size"}).json()
    assert "size" not in removed and "next" in removed
    assert all("links" not in p and "summary" not in p and "title" in p for p in removed["values"])
    only = http.get(url, params={"fields": "values.id,values.state"}).json()
    assert set(only) == {"values"} and all(set(p) == {"id", "state"} for p in only["values"])  # no next: not asked
    paged = http.get(url, params={"fields": "values.id,values.author.display_name,next,page,pagelen,size",
                                  "pagelen": 3}).json()
    assert set(paged) == {"values", "next", "page", "pagelen", "size"} and paged["next"].startswith(server.api_url)
    assert all(set(p) == {"id", "author"} and set(p["author"]) == {"display_name"} for p in paged["values"])
    second = http.get(paged["next"]).json()  # the next link keeps fields=
    assert set(second) == {"values", "next", "page", "pagelen", "size"} and second["page"] == 2
    named = http.get(url, params={"fields": "values.id,values.reviewers"}).json()  # naming a hidden field includes it
    assert all(set(p) == {"id", "reviewers"} for p in named["values"])
    mixed = http.get(url, params={"fields": "values.id,+values.participants,-values.participants.user"}).json()
    assert all(set(p) == {"id", "participants"} for p in mixed["values"])
    assert all("user" not in x and "role" in x for p in mixed["values"] for x in p["participants"])
    star = http.get(url, params={"fields": "values.*"}).json()
    assert set(star) == {"values"} and all("participants" in p and "title" in p for p in star["values"])
    raw_plus = http.get(url + "?fields=+values.participants").json()  # a bare + is a space: plain whitelist
    assert set(raw_plus) == {"values"} and all(set(p) == {"participants"} for p in raw_plus["values"])
    repository = http.get(f"{server.api_url}/repositories/{ws.slug}/{repo.slug}", params={"fields": "uuid,slug"}).json()
    assert repository == {"uuid": repo.uuid, "slug": repo.slug}
    commits = http.get(f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/commits",
                       params={"fields": "values.hash,next"}).json()
    assert set(commits) == {"values", "next"} and all(set(c) == {"hash"} for c in commits["values"])


# ------------------------------------------------------------------ commits
def test_commits_iterator_pagination_and_topological_order(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/commits"
    values, pages = walk(http, url, {"pagelen": 100})
    assert [c["hash"] for c in values] == [c["hash"] for c in ws.records("commits") if c["repository"]["uuid"] == repo.uuid]
    for page in pages:
        assert "page" not in page and "size" not in page
    token = parse_qs(urlsplit(pages[0]["next"]).query)
    assert token["pagelen"] == ["100"] and not token["page"][0].isdigit()
    position = {c["hash"]: i for i, c in enumerate(values)}
    for i, commit in enumerate(values):
        assert all(position[p["hash"]] > i for p in commit["parents"] if p["hash"] in position)
    dates = [c["date"] for c in values]
    assert dates != sorted(dates, reverse=True)  # topological, not by date
    empty = next(r for r in ws.repositories if r.main_name is None)
    assert http.get(f"{server.api_url}/repositories/{ws.slug}/{empty.slug}/commits").json()["values"] == []
    assert http.get(url, params={"page": "not-a-token!"}).status_code == 400


def test_commit_cursor_keeps_its_snapshot_across_pushes(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/commits"
    before = [c["hash"] for c in walk(http, url)[0]]
    first = http.get(url).json()
    ws.push_commits(repo.slug, 2)
    rest = walk(http, first["next"])[0]
    assert [c["hash"] for c in first["values"] + rest] == before
    assert len(walk(http, url)[0]) == len(before) + 2


def test_exclude_gives_exactly_new_commits(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/commits"
    old_heads = ws.branch_heads(repo.slug)
    old_main = ws.main_head(repo.slug)
    pushed = ws.push_commits(repo.slug, 3)["commits"]
    only_main = walk(http, url, {"include": repo.main_name, "exclude": old_main})[0]
    assert [c["hash"] for c in only_main] == pushed[::-1]
    all_new = walk(http, url, {"exclude": sorted(set(old_heads.values())), "pagelen": 2})[0]
    assert [c["hash"] for c in all_new] == pushed[::-1]
    assert len(walk(http, url, {"exclude": old_main})[0]) >= 3
    missing = http.get(url, params={"exclude": "f" * 40})
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Commit not found"


def test_commits_by_post_answer_as_the_get_and_a_too_long_url_answers_414(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/commits"
    old_heads = sorted(set(ws.branch_heads(repo.slug).values()))
    ws.push_commits(repo.slug, 2)
    by_get = http.get(url, params={"exclude": old_heads}).json()
    by_post = http.post(url, params={"pagelen": 10}, data={"exclude": old_heads}).json()
    assert [c["hash"] for c in by_post["values"]] == [c["hash"] for c in by_get["values"]] and len(by_get["values"]) == 2
    too_long = http.get(url, params={"exclude": ["a" * 40] * 200})
    assert too_long.status_code == 414
    assert http.post(url, data={"exclude": old_heads * 50}).status_code == 200  # the body has no such limit


def test_late_branch_commits_are_new_but_old_dated(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/commits"
    old_heads = sorted(set(ws.branch_heads(repo.slug).values()))
    oldest = min(_dt(c["date"]) for c in ws.records("commits"))
    late = ws.push_late_branch(repo.slug, 2, days_old=400)
    new = walk(http, url, {"exclude": old_heads})[0]
    assert [c["hash"] for c in new] == [late["merge_commit"]] + late["commits"][::-1]
    assert all(_dt(c["date"]) < oldest for c in new[1:]) and _dt(new[0]["date"]) <= ws.now


# ------------------------------------------------------------------ deployments, members
def test_deployments_rules(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/deployments"
    resp = http.get(url, params={"sort": "-created_on"})
    assert resp.status_code == 400 and resp.json()["type"] == "error"
    plain = walk(http, url)[0]
    assert walk(http, url, {"q": 'created_on > 2099-01-01'})[0] == plain
    assert [d["number"] for d in plain] == sorted((d["number"] for d in plain), reverse=True)
    empty = next(r for r in ws.repositories if r.main_name is None)
    assert http.get(f"{server.api_url}/repositories/{ws.slug}/{empty.slug}/deployments").json()["values"] == []
    members = walk(http, f"{server.api_url}/workspaces/{ws.slug}/members", {"pagelen": 5})[0]
    assert members == ws.records("workspace_users", server.api_url)


# ------------------------------------------------------------------ faults
@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_fires_as_configured(server, http, ws, kind):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pullrequests"
    other = f"{server.api_url}/repositories/{ws.slug}"
    rule = server.add_fault(kind, path_contains="/pullrequests", times=1, retry_after=7, ms=300)
    assert http.get(other).status_code == 200 and rule.fired == 0  # path filter
    started = time.monotonic()
    if kind == "drop_connection":
        with pytest.raises(requests.ConnectionError):
            http.get(url)
    else:
        resp = http.get(url)
        expected = {"429": 429, "500": 500, "502_html": 502, "403": 403, "403_scope": 403, "404": 404}.get(kind, 200)
        assert resp.status_code == expected
        if kind == "429":
            assert resp.text == "Rate limit for this resource has been exceeded" and resp.headers["Retry-After"] == "7"
        elif kind == "502_html":
            assert resp.headers["Content-Type"].startswith("text/html") and "<html>" in resp.text
        elif kind == "403":
            assert resp.json() == {"type": "error", "error": {"message": "Forbidden"}}
        elif kind == "403_scope":
            assert resp.json()["error"]["detail"]["required"] == ["read:pullrequest:bitbucket"]
            assert "read:pullrequest:bitbucket" not in resp.json()["error"]["detail"]["granted"]
        elif kind in ("500", "404"):
            assert resp.json()["type"] == "error"
        elif kind == "malformed_json":
            with pytest.raises(ValueError):
                resp.json()
        elif kind == "latency":
            assert time.monotonic() - started >= 0.3 and resp.json()["values"]
        elif kind == "foreign_next":
            assert resp.json()["next"].startswith("https://evil.example.com/2.0/repositories/")
        elif kind == "repeat_next":
            assert resp.json()["next"] == resp.url
    assert rule.fired == 1 and rule.times == 0
    assert http.get(url).status_code == 200 and "evil" not in http.get(url).text  # times=1: gone


def test_fault_forever_clear_and_server_latency(server, http, ws):
    server.add_fault("500", times=None)
    assert [http.get(f"{server.api_url}/user").status_code for _ in range(3)] == [500, 500, 500]
    server.clear_faults()
    assert http.get(f"{server.api_url}/user").status_code == 200
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN, latency_ms=150) as slow:
        started = time.monotonic()
        assert http.get(f"{slow.api_url}/user").status_code == 200
        assert time.monotonic() - started >= 0.15


def test_a_fault_by_repository_matches_its_slug_and_its_uuid_and_nothing_else(server, http, ws):
    repo, other = busiest(ws), next(r for r in ws.repositories if r is not busiest(ws))
    base = f"{server.api_url}/repositories/{ws.slug}"
    by_uuid = f"{base}/{quote(repo.uuid, safe='')}"  # as the connector asks: %7B...%7D
    rule = server.add_fault("403", repository=repo.slug.upper(), times=None)
    assert [http.get(u).status_code for u in (f"{base}/{repo.slug}/pullrequests", f"{by_uuid}/commits",
                                               f"{by_uuid}/deployments", by_uuid)] == [403, 403, 403, 403]
    assert http.get(f"{by_uuid}/pullrequests").json() == {"type": "error", "error": {"message": "Forbidden"}}
    assert http.get(f"{base}/{other.slug}/pullrequests").status_code == 200
    assert http.get(base).status_code == 200 and rule.fired == 5  # the listing concerns no one repository
    server.clear_faults()
    server.add_fault("500", path_contains="/deployments", repository=repo.uuid.strip("{}"), times=None)  # braces optional
    assert http.get(f"{base}/{repo.slug}/deployments").status_code == 500
    assert http.get(f"{base}/{repo.slug}/commits").status_code == 200  # path_contains still applies
    assert http.get(f"{base}/{quote(other.uuid, safe='')}/deployments").status_code == 200
    control = server.api_url.replace("/2.0", "/_sandbox")
    server.clear_faults()
    made = requests.post(f"{control}/faults", json={"kind": "404", "repository": repo.uuid, "times": 1})
    assert made.status_code == 201 and made.json()["repository"] == repo.uuid
    assert http.get(f"{base}/{repo.slug}/commits").status_code == 404 and http.get(f"{base}/{repo.slug}/commits").ok


@pytest.mark.parametrize("path, scope", [
    ("/repositories/{ws}", "read:repository:bitbucket"),
    ("/repositories/{ws}/{repo}", "read:repository:bitbucket"),
    ("/repositories/{ws}/{repo}/commits", "read:repository:bitbucket"),
    ("/repositories/{ws}/{uuid}/pullrequests", "read:pullrequest:bitbucket"),
    ("/repositories/{ws}/{repo}/pullrequests/1", "read:pullrequest:bitbucket"),
    ("/repositories/{ws}/{uuid}/deployments", "read:pipeline:bitbucket"),
    ("/repositories/{ws}/{repo}/environments", "read:pipeline:bitbucket"),
    ("/repositories/{ws}/{repo}/pipelines", "read:pipeline:bitbucket"),
    ("/repositories/{ws}/{uuid}/pipelines/", "read:pipeline:bitbucket"),
    ("/workspaces/{ws}/members", "read:workspace:bitbucket"),
    ("/workspaces/{ws}", "read:workspace:bitbucket"),
])
def test_each_endpoint_requires_its_scope(ws, http, path, scope):
    repo = busiest(ws)
    path = path.format(ws=ws.slug, repo=repo.slug, uuid=quote(repo.uuid, safe=""))
    others = [s for s in ALL_SCOPES if s != scope]
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN, scopes=others) as srv:
        refused = http.get(srv.api_url + path)
        assert refused.status_code == 403 and refused.json() == {"type": "error", "error": {
            "message": "Your credentials lack one or more required privilege scopes.",
            "detail": {"granted": others, "required": [scope]}}}
        assert list(refused.json()["error"]["detail"]) == ["granted", "required"]
        assert requests.get(srv.api_url + path).status_code == 401  # authentication comes first
        srv.scopes = [scope]
        assert http.get(srv.api_url + path).status_code != 403
    with SandboxServer(ws, email=EMAIL, api_token=TOKEN) as srv:  # scopes=None: all granted
        assert http.get(srv.api_url + path).status_code != 403


def test_scopes_at_run_time_and_in_info(server, http, ws):
    control = server.api_url.replace("/2.0", "/_sandbox")
    assert requests.get(f"{control}/scopes").json() == {"scopes": None, "granted": list(ALL_SCOPES)}
    put = requests.put(f"{control}/scopes", json={"scopes": ["read:repository:bitbucket"]})
    assert put.status_code == 200 and server.scopes == ["read:repository:bitbucket"]
    assert requests.get(f"{control}/info").json()["scopes"] == ["read:repository:bitbucket"]
    assert http.get(f"{server.api_url}/repositories/{ws.slug}").status_code == 200
    members = http.get(f"{server.api_url}/workspaces/{ws.slug}/members")
    assert members.status_code == 403 and members.json()["error"]["detail"] == {
        "granted": ["read:repository:bitbucket"], "required": ["read:workspace:bitbucket"]}
    assert requests.put(f"{control}/scopes", json={"scopes": "read:repository:bitbucket"}).status_code == 400
    assert requests.put(f"{control}/scopes", json={"scopes": None}).status_code == 200 and server.scopes is None
    assert http.get(f"{server.api_url}/workspaces/{ws.slug}/members").status_code == 200
    listing = requests.get(f"{control}/").json()
    assert "GET|PUT /_sandbox/scopes" in listing and "repository" in listing["POST /_sandbox/faults"]["body"]


# ------------------------------------------------------------------ control endpoints, request log
def test_control_endpoints_and_request_log(server, http, ws):
    repo = busiest(ws)
    control = server.api_url.replace("/2.0", "/_sandbox")
    server.reset_requests()
    before = len(ws.records("pull_requests"))
    resp = requests.post(f"{control}/mutate", json={"op": "add_pull_request", "args": {"repo_slug": repo.slug}})
    assert resp.status_code == 200 and resp.json()["result"]["id"] == len(repo.pull_requests)
    assert len(requests.get(f"{control}/records/pull_requests").json()) == before + 1
    assert requests.post(f"{control}/mutate", json={"op": "nope"}).status_code == 400
    assert requests.post(f"{control}/mutate", json={"op": "push_commits", "args": {"repo_slug": "x"}}).status_code == 404
    assert requests.post(f"{control}/faults", json={"kind": "429", "path_contains": "/user"}).status_code == 201
    assert http.get(f"{server.api_url}/user").status_code == 429
    opened = http.get(f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pullrequests", params={"pagelen": 50})
    assert opened.json()["values"][-1]["id"] == len(repo.pull_requests)
    http.get(f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/commits")
    log = requests.get(f"{control}/requests").json()
    assert [r["path"] for r in log["requests"]] == [r[1] for r in server.requests] and len(log["requests"]) == 3
    assert server.requests[1] == ("GET", f"/2.0/repositories/{ws.slug}/{repo.slug}/pullrequests", {"pagelen": ["50"]})
    counts = server.request_counts()
    assert {k: v for k, v in counts.items() if v} == {"pullrequests": 1, "commits": 1, "other": 1}
    assert set(counts) == set(resources.kinds())
    ws.delete_repository(repo.slug)
    assert http.get(f"{server.api_url}/repositories/{ws.slug}/{repo.slug}").status_code == 404


def test_mutations_move_updated_on(server, http, ws):
    repo = busiest(ws)
    url = f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pullrequests"
    mark = ws.now.isoformat()
    opened = next(p for p in repo.pull_requests if p.state == "OPEN")
    ws.update_pull_request(repo.slug, opened.id)
    changed = walk(http, url, {"q": f"updated_on > {mark}", "state": ["OPEN", "MERGED"]})[0]
    assert [(p["id"], p["state"]) for p in changed] == [(opened.id, "MERGED")] and changed[0]["merge_commit"]
    ws.update_repository(repo.slug)
    repos = http.get(f"{server.api_url}/repositories/{ws.slug}", params={"q": f"updated_on>{mark}"}).json()["values"]
    assert [r["slug"] for r in repos] == [repo.slug]
    ws.add_member()
    assert http.get(f"{server.api_url}/workspaces/{ws.slug}/members").json()["size"] == 13


def test_scales_to_large_workspaces():
    started = time.monotonic()
    big = generate_workspace(repositories=40, pull_requests=20000, commits=100000, deployments=5000)
    assert time.monotonic() - started < 5
    repo = max(big.repositories, key=lambda r: len(r.graph))
    with SandboxServer(big) as srv, requests.Session() as http:
        http.auth = (EMAIL, TOKEN)
        started = time.monotonic()
        url = f"{srv.api_url}/repositories/{big.slug}/{repo.slug}/commits?pagelen=100"
        for _ in range(5):
            url = http.get(url).json()["next"]
        pr = http.get(f"{srv.api_url}/repositories/{big.slug}/{repo.slug}/pullrequests",
                      params={"state": "MERGED", "q": "updated_on > 2026-01-01", "pagelen": 50, "page": 3})
        assert pr.status_code == 200 and len(pr.json()["values"]) == 50
        assert time.monotonic() - started < 2


# ------------------------------------------------------------------ environments, pipelines, steps
PIPE_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{5,9}Z$")
EMPTY_PIPELINES_PAGE = {"page": 1, "values": [], "size": 0, "pagelen": 0}
STEP_FIELDS = ("values.uuid,values.name,values.state,values.started_on,values.completed_on,values.duration_in_seconds,"
               "values.build_seconds_used,values.run_number,values.trigger,values.maxTime,values.image.name,"
               "page,pagelen,size,next")
SECRETS = ("sandbox-clear-secret-", "sandbox-registry-password-", "sandbox-script-token-")


def showcase(ws):
    """The repository with the most pipelines (it holds every state)."""
    return max(ws.repositories, key=lambda r: len(r.pipelines))


def pipelines_url(server, ws, repo, *rest):
    return "/".join([f"{server.api_url}/repositories/{ws.slug}/{repo.slug}/pipelines", *rest])


def test_generated_pipelines_states_dates_and_secrets(ws):
    pipelines, steps = ws.records("pipelines"), ws.records("pipeline_steps")
    states = {(p["state"]["name"], (p["state"].get("stage") or p["state"].get("result") or {}).get("name")) for p in pipelines}
    assert {("PENDING", None), ("IN_PROGRESS", "RUNNING"), ("IN_PROGRESS", "HALTED"), ("IN_PROGRESS", "PAUSED")} <= states
    assert {("COMPLETED", r) for r in ("SUCCESSFUL", "FAILED", "ERROR", "STOPPED", "EXPIRED")} <= states
    for p in pipelines:
        assert ("completed_on" in p) == (p["state"]["name"] == "COMPLETED") and PIPE_DATE.match(p["created_on"])
        assert p["uuid"].startswith("{") and p["has_variables"] == ("variables" in p)
    assert {len(p["created_on"]) for p in pipelines} >= {26, 27, 30}  # 5, 6 and 9 fraction digits
    assert any(p["completed_on"] < p["created_on"] for p in pipelines if "completed_on" in p)  # instantly failed
    assert {p["target"]["type"] for p in pipelines} == {"pipeline_ref_target", "pipeline_commit_target",
                                                        "pipeline_pullrequest_target"}
    custom = [p for p in pipelines if p["has_variables"]]
    assert custom and all(v["value"].startswith("sandbox-clear-secret-") for p in custom for v in p["variables"])
    assert {s["state"]["name"] for s in steps} == {"PENDING", "READY", "IN_PROGRESS", "COMPLETED"}
    for s in steps:
        assert s["image"]["password"].startswith("sandbox-registry-password-") and "email" in s["image"]
        assert any("sandbox-script-token-" in c["command"] for c in s["script_commands"]) and "maxTime" in s
        if s["state"]["name"] == "PENDING" or s["state"].get("result", {}).get("name") == "NOT_RUN":
            assert s.get("started_on") is None and s.get("completed_on") is None and s.get("duration_in_seconds") is None
    off = [r for r in ws.repositories if not r.pipelines_enabled]
    assert len(off) == 1 and not off[0].pipelines
    environments = ws.records("environments")
    assert {e["environment_type"]["name"] for e in environments} == {"Test", "Staging", "Production"}
    listed = {e["uuid"] for e in environments}
    assert all(d["environment"]["uuid"] in listed for d in ws.records("deployments"))
    assert generate_workspace(seed=1).records("pipeline_steps") == steps  # deterministic


def test_pipelines_leave_the_other_streams_unchanged(ws):
    digest = hashlib.sha256(json.dumps([ws.records(s) for s in ("repositories", "pull_requests", "commits",
                                                                 "deployments", "workspace_users")]).encode())
    assert digest.hexdigest()[:16] == "2fc90606b762e450"  # as generated before pipelines existed (eb4c118)


def test_pipelines_list_rules(server, http, ws):
    repo = showcase(ws)
    url = pipelines_url(server, ws, repo) + "/"
    missing = http.get(url.rstrip("/"))
    assert missing.status_code == 404 and missing.json() == {"type": "error", "error": {
        "message": "There is no API hosted at this URL"}}
    oldest, pages = walk(http, url)
    assert [p["uuid"] for p in oldest] == [p.uuid for p in repo.pipelines] and pages[0]["pagelen"] == 10
    assert [p["build_number"] for p in oldest] == list(range(1, len(oldest) + 1))
    first = http.get(url, params={"sort": "-created_on", "pagelen": 4, "fields": "values.uuid,next", "q": "x = 1"}).json()
    assert [p["uuid"] for p in first["values"]] == [p.uuid for p in repo.pipelines[::-1][:4]]
    assert first["next"] == f"{url}?page=2&pagelen=4"  # sort and fields dropped: page 2 is oldest first again
    assert http.get(first["next"]).json()["values"][0]["uuid"] == repo.pipelines[4].uuid
    assert [p["uuid"] for p in walk(http, url, {"sort": "created_on", "pagelen": 100})[0]] == [p["uuid"] for p in oldest]
    bad = http.get(url, params={"sort": "-completed_on"})
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "Invalid sort attribute provided 'completed_on'"
    assert http.get(url, params={"pagelen": 101}).status_code == 400 and http.get(url, params={"pagelen": 100}).ok
    control = server.api_url.replace("/2.0", "/_sandbox")
    assert requests.put(f"{control}/switches", json={"pipelines_next_link": False}).json() == {
        "pipelines_next_link": False, "ignore_fields": False}
    assert "next" not in http.get(url, params={"pagelen": 2}).json() and not ws.pipelines_next_link
    assert requests.put(f"{control}/switches", json={"ignore_fields": "yes"}).status_code == 400


def test_empty_pipelines_off_and_environments(server, http, ws):
    base = f"{server.api_url}/repositories/{ws.slug}"
    never = next(r for r in ws.repositories if r.pipelines_enabled and not r.pipelines and r.main_name)
    assert http.get(f"{base}/{never.slug}/pipelines/").json() == EMPTY_PIPELINES_PAGE
    empty = next(r for r in ws.repositories if r.main_name is None)
    assert http.get(f"{base}/{empty.slug}/environments").json() == EMPTY_PIPELINES_PAGE
    off = next(r for r in ws.repositories if not r.pipelines_enabled)
    some = showcase(ws).pipelines[0].uuid
    for path in ("pipelines/", f"pipelines/{quote(some)}", f"pipelines/{quote(some)}/steps/"):
        assert http.get(f"{base}/{off.slug}/{path}").status_code == 404, path
    envs = http.get(f"{base}/{off.slug}/environments").json()  # Pipelines off: environments still listed
    assert [e["name"] for e in envs["values"]] == ["Test", "Staging", "Production"][:len(envs["values"])]
    assert walk(http, f"{base}/{showcase(ws).slug}/environments")[0] == [
        e for e in ws.records("environments") if e["uuid"] in showcase(ws).environments]


def test_single_pipeline_and_steps_with_encoded_braces_and_fields(server, http, ws):
    repo = showcase(ws)
    p = next(x for x in repo.pipelines if len(x.steps) > 1)
    encoded = quote(p.uuid, safe="")
    assert encoded.startswith("%7B")
    truth = next(x for x in ws.records("pipelines", server.api_url) if x["uuid"] == p.uuid)
    for suffix in ("", "/"):
        assert http.get(pipelines_url(server, ws, repo, encoded) + suffix).json() == truth
    assert http.get(pipelines_url(server, ws, repo, quote("{00000000-0000-4000-8000-000000000000}"))).status_code == 404
    steps_url = pipelines_url(server, ws, repo, encoded, "steps") + "/"
    whole = http.get(steps_url).json()
    assert [s["uuid"] for s in whole["values"]] == [s.uuid for s in p.steps] and "sandbox-script-token-" in str(whole)
    trimmed = http.get(steps_url, params={"fields": STEP_FIELDS}).json()
    assert set(trimmed) == {"page", "pagelen", "size", "values"} and not any(s in str(trimmed) for s in SECRETS)
    assert all(set(v["image"]) == {"name"} and "script_commands" not in v for v in trimmed["values"])
    single = http.get(f"{steps_url}{quote(p.steps[1].uuid, safe='')}", params={"fields": "uuid,state"}).json()
    assert single == {"uuid": p.steps[1].uuid, "state": whole["values"][1]["state"]}
    ws.ignore_fields = True  # the pipelines module ignores fields=: the connector must strip secrets itself
    assert http.get(steps_url, params={"fields": STEP_FIELDS}).json() == whole
    custom = next(x for x in repo.pipelines if x.variables)
    listed = http.get(pipelines_url(server, ws, repo) + "/", params={"fields": "values.uuid", "pagelen": 100}).json()
    assert "sandbox-clear-secret-" in str(listed) and custom.uuid in str(listed)
    assert server.request_counts()["pipeline_steps"] == 4 and server.request_counts()["pipelines"] == 4


def test_pipeline_mutations(server, http, ws):
    repo = showcase(ws)
    updated = repo.updated_us
    running = next(p for p in ws.pipelines_in("IN_PROGRESS", "RUNNING") if p["repository"] == repo.slug)
    halted = ws.pipelines_in("IN_PROGRESS", "HALTED")[0]
    done = ws.complete_pipeline(repo.slug, running["uuid"])
    assert done["state"] == "COMPLETED" and done["result"] == "SUCCESSFUL" and PIPE_DATE.match(done["completed_on"])
    one = http.get(pipelines_url(server, ws, repo, quote(running["uuid"], safe=""))).json()
    assert one["state"]["result"]["name"] == "SUCCESSFUL" and one["completed_on"] == done["completed_on"]
    steps = http.get(pipelines_url(server, ws, repo, quote(running["uuid"], safe=""), "steps") + "/").json()["values"]
    assert {s["state"]["result"]["name"] for s in steps} == {"SUCCESSFUL"} and all(s["completed_on"] for s in steps)
    with pytest.raises(ValueError):
        ws.complete_pipeline(repo.slug, running["uuid"])
    resumed = ws.resume_pipeline(halted["repository"], halted["uuid"])
    assert (resumed["state"], resumed["stage"], resumed["completed_on"]) == ("IN_PROGRESS", "RUNNING", None)
    model = ws.pipeline(halted["repository"], halted["uuid"])
    assert [s.state for s in model.steps].count("IN_PROGRESS") == 1 and model.steps[-1].started_us is not None
    before = len(repo.pipelines)
    added = ws.add_pipeline(repo.slug, custom_variables=True)
    assert len(repo.pipelines) == before + 1 and repo.pipelines[-1].uuid == added["uuid"]
    newest = http.get(pipelines_url(server, ws, repo) + "/", params={"sort": "-created_on", "pagelen": 1}).json()
    assert newest["values"][0]["uuid"] == added["uuid"] and newest["values"][0]["has_variables"]
    assert "sandbox-clear-secret-" in str(newest["values"][0]["variables"])
    assert ws.add_pipeline(repo.slug, state="IN_PROGRESS", stage="HALTED")["stage"] == "HALTED"
    assert ws.add_pipeline(repo.slug, state="PENDING")["state"] == "PENDING"
    assert ws.add_pipeline(repo.slug, result="FAILED")["result"] == "FAILED"
    with pytest.raises(ValueError):
        ws.add_pipeline(next(r for r in ws.repositories if not r.pipelines_enabled).slug)
    assert repo.updated_us == updated  # a pipeline run is no repository change
    control = server.api_url.replace("/2.0", "/_sandbox")
    made = requests.post(f"{control}/mutate", json={"op": "add_pipeline", "args": {"repo_slug": repo.slug}})
    assert made.status_code == 200 and made.json()["result"]["state"] == "COMPLETED"
    assert len(requests.get(f"{control}/records/pipelines").json()) == len(ws.records("pipelines"))


def test_pipeline_ground_truth_and_the_demo_changes(ws):
    from integration_tests.demo import pipeline_changes
    from integration_tests.ground_truth import pipeline_truth, pipeline_truth_keys

    before = pipeline_truth_keys(ws)
    truth = pipeline_truth(ws)
    assert {s: set(v) for s, v in truth.items()} == before
    assert sorted(p["uuid"] for p in truth["pipelines"].values()) == sorted(p["uuid"] for p in ws.records("pipelines"))
    off = next(r for r in ws.repositories if not r.pipelines_enabled)
    assert not any(k[0] == off.uuid for k in before["pipelines"])
    changes = pipeline_changes(ws)
    after = pipeline_truth(ws)
    completed = after["pipelines"][(showcase(ws).uuid, changes["completed"]["uuid"])]
    assert completed["state"]["name"] == "COMPLETED" and "completed_on" in completed
    resumed = after["pipelines"][(showcase(ws).uuid, changes["resumed"]["uuid"])]
    assert resumed["state"]["stage"]["name"] == "RUNNING" and "completed_on" not in resumed
    assert set(after["pipelines"]) - before["pipelines"] == {(showcase(ws).uuid, a["uuid"]) for a in changes["added"]}
    assert sum(p["has_variables"] for p in after["pipelines"].values()) == sum(
        p["has_variables"] for p in truth["pipelines"].values()) + 1
