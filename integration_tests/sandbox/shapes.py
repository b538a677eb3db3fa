"""Builders that render sandbox models as Bitbucket Cloud API JSON objects.

Field names, nesting, nulls and date formats follow the recorded payloads in
``unit_tests/resource/bitbucket-api`` (repository_single__devlake, pullrequests__devlake,
commits__go-scm/codecov, deployments__faros, user_permissions_workspaces__codecov).
Links are built on api.bitbucket.org; the server rebases them (``rebase``) onto the origin the request
was sent to, as Bitbucket builds its links from the request's Host.
"""

from __future__ import annotations

import html as _html
import json
from typing import Any, Dict, Optional

from .util import fmt_nano, fmt_naive, fmt_s, fmt_us, fmt_z

API = "https://api.bitbucket.org/2.0"
WEB = "https://bitbucket.org"
PIPELINES_REST = "https://bitbucket-pipelines.prod.public.atl-paas.net//rest/1.0"  # as recorded: double slash, never rebased
AVATAR = {"href": "https://avatars.example.com/default.png"}


def rebase(body: bytes, api_url: str) -> bytes:
    """Point every API href of a serialised answer (``https://api.bitbucket.org/2.0...``) at ``api_url``.

    Web links (``https://bitbucket.org/...``: html, clone, avatars) stay, as on Bitbucket itself.
    """
    return body.replace(b'"' + API.encode(), b'"' + json.dumps(api_url)[1:-1].encode())


def _q(uuid: str) -> str:
    """URL-encode the braces of a ``{uuid}`` path segment."""
    return uuid.replace("{", "%7B").replace("}", "%7D")


def _link(href: str) -> Dict[str, str]:
    return {"href": href}


def rendered(raw: str) -> Dict[str, str]:
    """A ``rendered`` content object (markdown)."""
    first = raw.strip().split("\n")[0] if raw.strip() else ""
    return {"type": "rendered", "raw": raw, "markup": "markdown", "html": f"<p>{_html.escape(first)}</p>" if first else ""}


def account(acc) -> Dict[str, Any]:
    """An ``account`` (``user`` or ``app_user``) as embedded in other objects."""
    out: Dict[str, Any] = {"display_name": acc.display_name}
    if acc.type == "app_user":
        out["links"] = {"avatar": dict(AVATAR)}
        out.update(type="app_user", uuid=acc.uuid, account_id=acc.account_id, kind=acc.kind)
        return out
    out["links"] = {
        "self": _link(f"{API}/users/{_q(acc.uuid)}"),
        "avatar": dict(AVATAR),
        "html": _link(f"{WEB}/{_q(acc.uuid)}/"),
    }
    out.update(type="user", uuid=acc.uuid, account_id=acc.account_id, nickname=acc.nickname)
    return out


def user(acc) -> Dict[str, Any]:
    """``GET /2.0/user``: the authenticated account with its profile fields."""
    out = account(acc)
    out.update(created_on=fmt_us(acc.created_us), is_staff=False, account_status="active", location=None, website=None)
    return out


def workspace_ref(ws) -> Dict[str, Any]:
    """The condensed workspace embedded in repositories and memberships."""
    return {
        "type": "workspace",
        "uuid": ws.uuid,
        "name": ws.name,
        "slug": ws.slug,
        "links": {
            "avatar": dict(AVATAR),
            "html": _link(f"{WEB}/{ws.slug}/"),
            "self": _link(f"{API}/workspaces/{ws.slug}"),
        },
    }


def workspace(ws) -> Dict[str, Any]:
    """``GET /2.0/workspaces/{workspace}``."""
    out = workspace_ref(ws)
    base = f"{API}/workspaces/{ws.slug}"
    out["links"].update(
        members=_link(f"{base}/members"),
        owners=_link(f"{base}/members?q=permission%3D%22owner%22"),
        projects=_link(f"{base}/projects"),
        repositories=_link(f"{API}/repositories/{ws.slug}"),
        snippets=_link(f"{API}/snippets/{ws.slug}"),
    )
    out.update(is_private=True, created_on=fmt_us(ws.created_us), updated_on=fmt_us(ws.created_us))
    return out


def project(ws, proj) -> Dict[str, Any]:
    """The project reference embedded in repositories."""
    return {
        "type": "project",
        "key": proj.key,
        "uuid": proj.uuid,
        "name": proj.name,
        "links": {
            "self": _link(f"{API}/workspaces/{ws.slug}/projects/{proj.key}"),
            "html": _link(f"{WEB}/{ws.slug}/workspace/projects/{proj.key}"),
            "avatar": dict(AVATAR),
        },
    }


def repository(ws, repo) -> Dict[str, Any]:
    """A full ``repository`` object (list and single endpoints)."""
    full = f"{ws.slug}/{repo.slug}"
    api = f"{API}/repositories/{full}"
    links: Dict[str, Any] = {
        "self": _link(api),
        "html": _link(f"{WEB}/{full}"),
        "avatar": dict(AVATAR),
        "pullrequests": _link(f"{api}/pullrequests"),
        "commits": _link(f"{api}/commits"),
        "forks": _link(f"{api}/forks"),
        "watchers": _link(f"{api}/watchers"),
        "branches": _link(f"{api}/refs/branches"),
        "tags": _link(f"{api}/refs/tags"),
        "downloads": _link(f"{api}/downloads"),
        "source": _link(f"{api}/src"),
        "clone": [
            {"name": "https", "href": f"https://git@bitbucket.org/{full}.git"},
            {"name": "ssh", "href": f"git@bitbucket.org:{full}.git"},
        ],
        "hooks": _link(f"{api}/hooks"),
    }
    if repo.has_issues:
        links["issues"] = _link(f"{api}/issues")
    main = repo.main_name
    return {
        "type": "repository",
        "full_name": full,
        "links": links,
        "name": repo.name,
        "slug": repo.slug,
        "description": repo.description,
        "scm": "git",
        "website": None,
        "owner": account(ws.owner),
        "workspace": workspace_ref(ws),
        "is_private": repo.is_private,
        "project": project(ws, repo.project),
        "fork_policy": repo.fork_policy,
        "created_on": fmt_us(repo.created_us),
        "updated_on": fmt_us(repo.updated_us),
        "size": repo.size,
        "language": repo.language,
        "has_issues": repo.has_issues,
        "has_wiki": repo.has_wiki,
        "uuid": repo.uuid,
        "mainbranch": {"name": main, "type": "branch"} if main else None,
        "parent": None,
        "override_settings": {"default_merge_strategy": True, "branching_model": True},
    }


def repository_ref(ws, repo) -> Dict[str, Any]:
    """The condensed repository embedded in commits and pull request endpoints."""
    full = f"{ws.slug}/{repo.slug}"
    return {
        "type": "repository",
        "full_name": full,
        "links": {"self": _link(f"{API}/repositories/{full}"), "html": _link(f"{WEB}/{full}"), "avatar": dict(AVATAR)},
        "name": repo.name,
        "uuid": repo.uuid,
    }


def commit_ref(full: str, hash_: str) -> Dict[str, Any]:
    """``{type, hash, links{self, html}}`` as used for parents, PR endpoints and merge_commit."""
    return {
        "type": "commit",
        "hash": hash_,
        "links": {
            "self": _link(f"{API}/repositories/{full}/commit/{hash_}"),
            "html": _link(f"{WEB}/{full}/commits/{hash_}"),
        },
    }


def commit(ws, repo, c) -> Dict[str, Any]:
    """A ``commit`` as listed by ``GET .../commits`` (whole-second dates, author.user optional)."""
    full = f"{ws.slug}/{repo.slug}"
    api = f"{API}/repositories/{full}"
    author: Dict[str, Any] = {"raw": c.raw_author, "type": "author"}
    if c.author is not None:
        author["user"] = account(c.author)
    commits = repo.graph.commits
    return {
        "hash": c.hash,
        "repository": repository_ref(ws, repo),
        "links": {
            "self": _link(f"{api}/commit/{c.hash}"),
            "comments": _link(f"{api}/commit/{c.hash}/comments"),
            "patch": _link(f"{api}/patch/{c.hash}"),
            "html": _link(f"{WEB}/{full}/commits/{c.hash}"),
            "diff": _link(f"{api}/diff/{c.hash}"),
            "approve": _link(f"{api}/commit/{c.hash}/approve"),
            "statuses": _link(f"{api}/commit/{c.hash}/statuses"),
        },
        "author": author,
        "summary": rendered(c.message),
        "parents": [commit_ref(full, commits[p].hash) for p in c.parents],
        "date": fmt_s(c.date_us),
        "message": c.message,
        "type": "commit",
    }


def _endpoint(ws, repo, branch: str, hash_: str) -> Dict[str, Any]:
    full = f"{ws.slug}/{repo.slug}"
    return {"branch": {"name": branch}, "commit": commit_ref(full, hash_[:12]), "repository": repository_ref(ws, repo)}


def participant(p) -> Dict[str, Any]:
    """One entry of a pull request's ``participants``."""
    return {
        "type": "participant",
        "user": account(p.account),
        "role": p.role,
        "approved": p.approved,
        "state": p.state,
        "participated_on": fmt_us(p.participated_us) if p.participated_us is not None else None,
    }


def pullrequest(ws, repo, pr) -> Dict[str, Any]:
    """A whole ``pullrequest``, as ``GET .../pullrequests/{id}`` answers it.

    The collection leaves out ``participants`` and ``reviewers`` unless asked with ``fields=``
    (``hidden`` of its ``resources.PAGED`` entry).
    """
    full = f"{ws.slug}/{repo.slug}"
    api = f"{API}/repositories/{full}"
    base = f"{api}/pullrequests/{pr.id}"
    spec = f"{full}:{pr.source_hash[:12]}%0D{pr.dest_hash[:12]}?from_pullrequest_id={pr.id}&topic=true"
    links = {name: _link(f"{base}/{name}") for name in ("commits", "approve", "request-changes")}
    links.update(
        diff=_link(f"{api}/diff/{spec}"),
        diffstat=_link(f"{api}/diffstat/{spec}"),
        **{name: _link(f"{base}/{name}") for name in ("comments", "activity", "merge", "decline", "statuses")},
    )
    return {
        "comment_count": pr.comment_count,
        "task_count": pr.task_count,
        "type": "pullrequest",
        "id": pr.id,
        "title": pr.title,
        "description": pr.description,
        "state": pr.state,
        "merge_commit": commit_ref(full, pr.merge_hash[:12]) if pr.merge_hash else None,
        "close_source_branch": pr.close_source_branch,
        "closed_by": account(pr.closed_by) if pr.closed_by is not None else None,
        "author": account(pr.author),
        "reason": pr.reason,
        "created_on": fmt_us(pr.created_us),
        "updated_on": fmt_us(pr.updated_us),
        "destination": _endpoint(ws, repo, pr.dest_branch, pr.dest_hash),
        "source": _endpoint(ws, repo, pr.source_branch, pr.source_hash),
        "links": {"self": _link(base), "html": _link(f"{WEB}/{full}/pull-requests/{pr.id}"), **links},
        "summary": rendered(pr.description),
        "participants": [participant(p) for p in pr.participants],
        "reviewers": [account(p.account) for p in pr.participants if p.role == "REVIEWER"],
    }


def _release(full: str, d, with_created: bool) -> Dict[str, Any]:
    out = {
        "type": "deployment_release",
        "uuid": d.release_uuid,
        "pipeline": {"uuid": d.pipeline_uuid, "type": "pipeline"},
        "key": f"pipelines-{d.pipeline_uuid}",
        "name": f"#{d.build_number}",
        "url": f"{WEB}/{full}/addon/pipelines/home#!/results/{d.build_number}",
        "commit": {
            "type": "commit",
            "hash": d.commit_hash,
            "links": {"html": _link(f"{WEB}/{full}/commits/{d.commit_hash}")},
        },
    }
    if with_created:
        out["created_on"] = fmt_z(d.created_us)
    return out


def deployment(ws, repo, d) -> Dict[str, Any]:
    """A ``deployment`` shaped like real list items (``state.started_on/completed_on``, ``Z`` dates)."""
    full = f"{ws.slug}/{repo.slug}"
    step_url = f"{WEB}/{full}/addon/pipelines/home#!/results/{d.build_number}/steps/{_q(d.step_uuid)}"
    state: Dict[str, Any]
    if d.state == "COMPLETED":
        state = {
            "type": "deployment_state_completed",
            "name": "COMPLETED",
            "status": {"name": d.status, "type": f"deployment_state_completed_{d.status.lower()}"},
            "url": step_url,
            "started_on": fmt_z(d.started_us),
            "completed_on": fmt_z(d.completed_us),
        }
    elif d.state == "IN_PROGRESS":
        state = {"type": "deployment_state_in_progress", "name": "IN_PROGRESS", "url": step_url,
                 "started_on": fmt_z(d.started_us)}
    else:
        state = {"type": "deployment_state_undeployed", "name": "UNDEPLOYED", "status": {}}
    out: Dict[str, Any] = {
        "uuid": d.uuid,
        "type": "deployment",
        "environment": {"uuid": d.environment_uuid},
        "step": {"uuid": d.step_uuid},
        "commit": {"type": "commit", "hash": d.commit_hash, "links": {"html": _link(f"{WEB}/{full}/commits/{d.commit_hash}")}},
    }
    last: Optional[int] = d.completed_us if d.state == "COMPLETED" else d.started_us if d.state == "IN_PROGRESS" else None
    if last is not None:
        out["last_update_time"] = fmt_z(last)
    out.update(key=f"steps-{d.step_uuid}", state=state, version=d.version, number=d.number)
    out["deployable"] = _release(full, d, True)
    if d.has_release:
        out["release"] = _release(full, d, False)
    return out


def membership(ws, m) -> Dict[str, Any]:
    """A ``workspace_membership`` as returned by ``GET /workspaces/{ws}/members``."""
    out: Dict[str, Any] = {
        "links": {"self": _link(f"{API}/workspaces/{ws.slug}/members/{_q(m.account.uuid)}")},
        "user": account(m.account),
        "workspace": workspace_ref(ws),
        "type": "workspace_membership",
    }
    if m.added_us is not None:
        out["last_accessed"] = fmt_naive(m.last_accessed_us) if m.last_accessed_us is not None else None
        out["added_on"] = fmt_naive(m.added_us)
    return out


def environment(env) -> Dict[str, Any]:
    """A ``deployment_environment`` as ``GET .../environments`` lists it (no links, no dates)."""
    return {
        "uuid": env.uuid,
        "name": env.name,
        "type": "deployment_environment",
        "slug": env.slug,
        "category": {"name": env.name},
        "restrictions": {"admin_only": env.admin_only, "type": "deployment_restrictions_configuration"},
        "environment_lock_enabled": env.environment_lock_enabled,
        "lock": {"type": "deployment_environment_lock_open", "name": "OPEN"},
        "deployment_gate_enabled": env.deployment_gate_enabled,
        "rank": env.rank,
        "hidden": env.hidden,
        "environment_type": {"name": env.name, "type": "deployment_environment_type", "rank": env.rank},
    }


def _pipeline_commit(full: str, hash_: str) -> Dict[str, Any]:
    return {"type": "commit", "hash": hash_, "links": {"self": _link(f"{API}/repositories/{full}/commit/{hash_}"),
                                                       "html": _link(f"{WEB}/{full}/commits/{hash_}")}}


def _target(full: str, p) -> Dict[str, Any]:
    """``pipeline_ref_target``, ``pipeline_commit_target`` or ``pipeline_pullrequest_target``."""
    commit = _pipeline_commit(full, p.commit_hash)
    if p.target == "commit":
        return {"type": "pipeline_commit_target", "selector": {"type": "default"}, "commit": commit}
    if p.target == "pullrequest":
        pr = p.pr
        return {"type": "pipeline_pullrequest_target", "source": pr.source_branch, "destination": pr.dest_branch,
                "destination_commit": {"hash": pr.dest_hash[:12]}, "commit": commit,
                "pullrequest": {"type": "pullrequest", "id": pr.id, "title": pr.title, "draft": False,
                                "links": {"self": _link(f"{API}/repositories/{full}/pullrequests/{pr.id}"),
                                          "html": _link(f"{WEB}/{full}/pull-requests/{pr.id}")}},
                "selector": {"type": "pull-requests", "pattern": "**"}}
    selector: Dict[str, Any] = {"type": "default"}
    if p.selector == "branches":
        selector = {"type": "branches", "pattern": p.ref_name}
    elif p.selector == "custom":
        selector = {"type": "custom", "pattern": p.custom_name}
    return {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": p.ref_name, "selector": selector,
            "commit": commit}


def _pipeline_state(p) -> Dict[str, Any]:
    if p.state == "PENDING":
        return {"name": "PENDING", "type": "pipeline_state_pending"}
    if p.state == "IN_PROGRESS":
        return {"name": "IN_PROGRESS", "type": "pipeline_state_in_progress",
                "stage": {"name": p.stage, "type": f"pipeline_state_in_progress_{p.stage.lower()}"}}
    result: Dict[str, Any] = {"name": p.result, "type": f"pipeline_state_completed_{p.result.lower()}"}
    if p.result == "STOPPED" and p.terminator is not None:
        result["terminator"] = account(p.terminator)
    if p.result == "ERROR":
        result["error"] = {"key": "plan-service.parse.parse-error",
                           "message": "There is an error in your bitbucket-pipelines.yml at [pipelines > default]."}
    return {"name": "COMPLETED", "type": "pipeline_state_completed", "result": result}


def pipeline(ws, repo, p) -> Dict[str, Any]:
    """A ``pipeline`` (list and single endpoints): ``completed_on`` absent until COMPLETED, dates with
    5-9 fraction digits, ``variables`` (clear-text values!) on custom pipelines only."""
    full = f"{ws.slug}/{repo.slug}"
    rest = f"{PIPELINES_REST}/accounts/{ws.uuid}/repositories/{repo.uuid}/pipelines/{p.uuid}"
    out: Dict[str, Any] = {
        "type": "pipeline",
        "uuid": p.uuid,
        "repository": repository_ref(ws, repo),
        "state": _pipeline_state(p),
        "build_number": p.build_number,
        "creator": account(p.creator),
        "created_on": fmt_nano(p.created_us, p.created_ns, p.digits),
    }
    if p.completed_us is not None:
        out["completed_on"] = fmt_nano(p.completed_us, p.completed_ns, p.digits)
    out.update(
        target=_target(full, p),
        trigger={"name": p.trigger, "type": f"pipeline_trigger_{p.trigger.lower()}"},
        run_number=p.run_number,
        duration_in_seconds=p.duration,
        build_seconds_used=p.build_seconds,
        first_successful=p.first_successful,
        expired=p.expired,
        links={"self": _link(rest), "steps": _link(f"{rest}/steps")},
        has_variables=bool(p.variables),
    )
    if p.variables:
        out["variables"] = [{"type": "pipeline_variable", "key": k, "value": v, "secured": False} for k, v in p.variables]
    return out


def _commands(*commands: str, kind: str = "user") -> list:
    return [{"commandType": kind, "command": c, "name": c} for c in commands]


def _step_state(s) -> Dict[str, Any]:
    if s.state != "COMPLETED":
        return {"type": f"pipeline_step_state_{s.state.lower()}", "name": s.state}
    result: Dict[str, Any] = {"name": s.result, "type": f"pipeline_step_state_completed_{s.result.lower()}"}
    if s.result == "ERROR":
        result["error"] = {"key": "agent.build.time-limit-exceeded", "message": "The step exceeded its time limit."}
    return {"type": "pipeline_step_state_completed", "name": "COMPLETED", "result": result}


def step(ws, repo, p, s) -> Dict[str, Any]:
    """A ``pipeline_step`` (camelCase ``maxTime``): PENDING steps have no dates, NOT_RUN steps null ones;
    ``image`` carries registry credentials and the commands a token (``sandbox-...-<n>``)."""
    out: Dict[str, Any] = {"type": "pipeline_step", "uuid": s.uuid, "pipeline": {"type": "pipeline", "uuid": p.uuid}}
    if s.name:
        out["name"] = s.name
    out.update(
        run_number=s.run_number,
        maxTime=s.max_time,
        trigger={"type": "pipeline_step_trigger_manual" if s.manual else "pipeline_step_trigger_automatic"},
        state=_step_state(s),
        image={"name": s.image, "username": f"sandbox-registry-password-{s.secret}-username",
               "password": f"sandbox-registry-password-{s.secret}",
               "email": f"sandbox-registry-password-{s.secret}@example.com"},
        setup_commands=_commands("umask 000", f"git reset --hard {p.commit_hash}",
                                 "git config user.name bitbucket-pipelines"),
        script_commands=_commands(
            f"export DEPLOY_TOKEN=sandbox-script-token-{s.secret}",
            f"curl -fsS -H 'Authorization: Bearer sandbox-script-token-{s.secret}' https://artifacts.example.com/{repo.slug}",
            "make test" if "eploy" not in s.name else "make deploy"),
        teardown_commands=[{"commandType": "system", "action": "PROCESS_TEST_REPORTS",
                            "command": 'echo "Processing test reports"', "name": "Process Test Reports"}],
        build_seconds_used=(s.duration or 0) + (1 if s.duration else 0),
    )
    if s.started_us is not None:
        out["started_on"] = fmt_z(s.started_us)
    if s.completed_us is not None:
        out["completed_on"] = fmt_z(s.completed_us)
        out["duration_in_seconds"] = s.duration
    if s.state == "COMPLETED" and s.result == "NOT_RUN":
        out.update(started_on=None, completed_on=None, duration_in_seconds=None)
    return out
