"""commits: ``GET /repositories/{workspace}/{repository}/commits``."""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Mapping, MutableMapping, Optional, Set
from urllib.parse import urlencode

import requests
from airbyte_cdk.models import SyncMode

from source_bitbucket.dates import format_datetime, parse_datetime
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream
from source_bitbucket.streams.unchanged import SkipsUnchangedRepositories

MAX_URL_LENGTH = 2048  # the longest URL sent; longer tip lists go in a POST body (kept well under any proxy's limit)
_HASH = re.compile(r"^[0-9a-f]{7,64}$")


class Commits(SkipsUnchangedRepositories, RepositoryScopedStream):
    """Commits of every branch and tag of every repository. Primary key (``repository_uuid``,
    ``hash``), cursor ``date``, ``pagelen`` 100.

    The endpoint lists all branches in topological order, not date order, and has no date
    filter, so no date can tell where the new commits end: a branch merged (or pushed) late
    brings old-dated commits that are new to us. The stop rule is therefore the server's
    own: the state keeps, per repository, the tips of the commit graph already read, and the
    next sync asks for ``exclude=<tip>`` (repeated), which lists exactly the commits not
    reachable from them. Nothing is lost and nothing is read twice; an unchanged repository
    costs one request. Commits dated before ``start_date`` are read but not emitted.

    Skip rule (``SkipsUnchangedRepositories``): a repository whose ``updated_on`` has not moved
    since its commits were last read has no new commits; it is skipped without a request, but read
    anyway once a week.

    Tips travel as ``exclude`` query parameters while the URL stays within ``MAX_URL_LENGTH``; beyond
    that (a repository with many branches and tags), the first page is ``POST .../commits`` with the
    tips in a form-encoded body, which Bitbucket documents as identical to the GET "to avoid URL
    length issues"; the ``next`` links it answers are GET URLs again. No tip is ever dropped, so an
    unchanged repository costs one request whatever its number of branches.

    State per repository: ``{"date": <latest commit date>, "exclude": [<40-char hashes>],
    "repository_updated_on": <the listing's updated_on when read>, "checked_on": <that sync's start>}``.
    If Bitbucket no longer knows an excluded hash (history rewritten and collected), it answers
    404; the repository is then read again in full (duplicates, not losses) and the tips rebuilt.
    State without ``exclude`` (older shapes) is read in full once, emitting the commits dated
    after its ``date``.
    """

    name = "commits"
    primary_key = ["repository_uuid", "hash"]
    cursor_field = "date"
    page_size = 100
    required_scope = "read:repository:bitbucket"
    resource = "commits"
    detect_shifts = False  # iterator pagination over a snapshot: nothing slides between pages

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._frontiers: Dict[str, CommitFrontier] = {}
        self._listed: Dict[str, Optional[str]] = {}  # repository uuid -> its listed updated_on, when read
        self._stale_exclude: set = set()

    def slice_extras(self, repository: Mapping[str, str], incremental: bool) -> Mapping[str, Any]:
        entry = self.state.get(repository["uuid"]) if incremental else None
        exclude = entry.get("exclude") if isinstance(entry, Mapping) else None
        # hand-edited or damaged state: keep only commit hashes
        exclude = sorted({h for h in exclude if isinstance(h, str) and _HASH.match(h)}) if isinstance(exclude, list) else []
        unchanged = self.is_unchanged(entry, repository["uuid"])
        if exclude:  # the server lists exactly the new commits, whatever their date
            return {"exclude": exclude, "since": format_datetime(self.config.start_date), "unchanged": unchanged}
        return {"exclude": [], "unchanged": unchanged}  # unchanged here: an empty repository still empty

    @property
    def http_method(self) -> str:
        """``POST`` for the first page of a repository whose tips do not fit in a URL, ``GET`` otherwise
        (later pages follow GET ``next`` links). Read by the CDK before each request, on the thread
        that reads the repository (``read_slice`` names its slice there)."""
        stream_slice = getattr(self._local, "slice", None)
        first_page = not self._walk().followed
        return "POST" if stream_slice and first_page and self._tips_in_body(stream_slice) else "GET"

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {} if self._tips_in_body(stream_slice) else self._tips(stream_slice)

    def request_body_data(self, stream_state=None, stream_slice=None, next_page_token=None) -> Optional[Mapping[str, Any]]:
        """The first page's tips, form-encoded (``exclude=<hash>`` repeated), when they go by POST."""
        return self._tips(stream_slice) if not next_page_token and self._tips_in_body(stream_slice or {}) else None

    @staticmethod
    def _tips(stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"exclude": stream_slice["exclude"]} if stream_slice.get("exclude") else {}

    def _tips_in_body(self, stream_slice: Mapping[str, Any]) -> bool:
        tips = self._tips(stream_slice)
        if not tips:
            return False
        url = f"{self.url_base}{self.first_page_path(stream_slice)}?{urlencode({'pagelen': self.page_size, **tips}, doseq=True)}"
        return len(url) > MAX_URL_LENGTH

    def read_slice(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]],
        stream_slice: Mapping[str, Any],
        stream_state: Optional[Mapping[str, Any]],
    ) -> Iterable[Mapping[str, Any]]:
        if stream_slice.get("unchanged"):
            return  # no push since the last read: no new commit (no request)
        uuid = stream_slice["repository"]["uuid"]
        self._frontiers[uuid] = CommitFrontier(stream_slice["exclude"])
        self._listed[uuid] = self.listed_updated_on(uuid)
        self._local.slice = stream_slice  # for http_method
        yield from super().read_slice(sync_mode, cursor_field, stream_slice, stream_state)
        if uuid in self._stale_exclude:
            self._stale_exclude.discard(uuid)
            self.logger.warning(
                f"commits: Bitbucket no longer knows a commit read earlier from {stream_slice['repository']['full_name']}; "
                "reading the repository's commits again in full."
            )
            self._frontiers[uuid] = CommitFrontier([])
            rescan = {**stream_slice, "exclude": [], "since": format_datetime(self.config.start_date)}
            self._local.slice = rescan
            yield from super().read_slice(sync_mode, cursor_field, rescan, stream_state)
        self._frontiers[uuid].release()

    def parse_response(self, response: requests.Response, *, stream_state, stream_slice=None, next_page_token=None):
        """The page's commits, read into the frontier as a whole before any goes on, so that the tips
        published (``snapshot``) always describe whole pages; a 404 while commits are excluded means
        Bitbucket no longer knows an excluded commit (``read_slice`` reads the repository again)."""
        uuid = stream_slice["repository"]["uuid"]
        if response.status_code == 404 and stream_slice["exclude"]:
            self._stale_exclude.add(uuid)
            return
        records = list(super().parse_response(response, stream_state=stream_state, stream_slice=stream_slice))
        self._frontiers[uuid].snapshot()
        yield from records

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        self._frontiers[stream_slice["repository"]["uuid"]].add(
            record.get("hash"), [p.get("hash") for p in record.get("parents") or [] if isinstance(p, Mapping)]
        )
        date = parse_datetime(record.get("date"))
        if date is None or date > parse_datetime(stream_slice["since"]):
            yield from super().transform(record, stream_slice)

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        """Write the repository's ``exclude`` tips once it has been read to its end (never before:
        an excluded tip hides all its ancestors, so tips written mid-repository would hide the
        pages not read yet). Also when no commit was emitted (all older than ``start_date``), but not
        for a repository read from the sync's start (``is_held``: its stored cursor was in the
        future): the commits dated before that were read and not emitted, and tips written now
        would hide them from the next sync for good."""
        if self.cursors.is_held(self._initial_state, stream_slice["repository"]) or stream_slice.get("unchanged"):
            return
        uuid = stream_slice["repository"]["uuid"]
        frontier = self._frontiers.get(uuid)
        listed = self._listed.pop(uuid, None)
        entry = self._state.get(uuid)
        entry = dict(entry) if isinstance(entry, Mapping) else {}
        if frontier is None:
            return
        updated = {**entry, "exclude": frontier.excluded} if frontier.excluded or "exclude" in entry else dict(entry)
        updated.update(self.checked(listed))  # what the skip rule compares next time
        if updated != entry:
            self._state[uuid] = updated


class CommitFrontier:
    """The tips of the commit graph already read from one repository.

    ``GET .../commits?exclude=<hash>`` lists every commit reachable from the repository's
    branches and tags and *not* reachable from the excluded hashes. Excluding the tips we have
    read returns exactly the commits that are new to us, whatever their date (a branch merged
    late brings old-dated commits) and in whatever order the API lists them.

    A hash is a tip when no commit read so far names it as a parent. The order in which commits
    arrive does not matter: a parent read before its child is dropped when the child arrives.

    ``add`` and ``snapshot`` run on the thread reading the repository; ``excluded`` (a list that
    is replaced, never changed) may be read from any thread.
    """

    def __init__(self, previous_tips: Iterable[str]) -> None:
        self.tips: Set[str] = set(previous_tips)
        self.excluded: List[str] = sorted(self.tips)
        self._referenced: Set[str] = set()

    def add(self, commit_hash: str, parent_hashes: Iterable[str]) -> None:
        """Record a commit read from the listing."""
        if commit_hash not in self._referenced:
            self.tips.add(commit_hash)
        for parent in parent_hashes:
            self._referenced.add(parent)
            self.tips.discard(parent)

    def snapshot(self) -> List[str]:
        """Publish the tips to send as ``exclude`` next time, all of them (sorted, for stable URLs)."""
        self.excluded = sorted(self.tips)
        return self.excluded

    def release(self) -> None:
        """Forget the parents seen (the repository is read): memory stays flat across repositories."""
        self._referenced = set()
