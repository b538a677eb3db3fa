"""pull_request_activity: ``GET /repositories/{workspace}/{repository}/pullrequests/activity``."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any, Iterable, Mapping, MutableMapping, Optional

import requests

from source_bitbucket.dates import format_datetime, parse_datetime
from source_bitbucket.streams.pagination import page_body
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream

# The feed's order is not guaranteed strict: each sync reads (and emits again) this much before the cursor.
LOOKBACK = timedelta(hours=1)
# The date of each kind of entry; an unknown kind's is the first of these its object has.
DATE_FIELDS = {"update": "date", "approval": "date", "changes_requested": "date", "comment": "created_on"}
ANY_DATE_FIELDS = ("date", "created_on", "updated_on")
ACTOR_FIELDS = ("author", "user", "creator")


class PullRequestActivity(RepositoryScopedStream):
    """The review events of every repository's pull requests, from the repository-wide feed: one
    walk per repository (one request per 50 events), not one per pull request. ``pagelen`` 50 (400
    above), iterator pagination (``next`` followed verbatim), newest first; ``q`` and ``sort`` are
    ignored by the endpoint. Source: ``shared/docs/bitbucket-api-more-endpoints.md`` 2.8 (the spec
    documents the path without a response schema; PostHog's source reads the same feed).

    An entry is ``{"pull_request": {id, title, links}, <kind>: {...}}`` with ``<kind>`` one of
    ``update``, ``approval``, ``changes_requested``, ``comment`` (others are kept as rows of their
    own kind). Records keep the entry and gain, lifted to the top level:

    * ``activity_type``: the kind;
    * ``activity_date``: ``update.date``, ``approval.date``, ``changes_requested.date`` or
      ``comment.created_on`` (an unknown kind: its ``date``, ``created_on`` or ``updated_on``),
      canonical UTC; the cursor;
    * ``actor_uuid``: ``update.author.uuid``, otherwise the kind's ``user`` (or ``creator``) uuid;
    * ``pull_request_id``;
    * ``activity_id``: the synthetic key, ``sha256`` (hex, 32 chars) of the JSON list
      ``[pull_request_id, activity_type, activity_date, actor_uuid, comment id]``; entries with
      neither a date nor an actor hash their whole object. Stable across syncs (an edited
      comment keeps its id and ``created_on``).

    Primary key (``repository_uuid``, ``pull_request_id``, ``activity_id``). Incremental per
    repository on ``activity_date``: the walk stops after the first page that reaches ``LOOKBACK``
    before the repository's cursor, and entries dated after that point are emitted (those of the
    lookback again: duplicates, no losses). State ``{repository uuid: {"activity_date"}}``.
    """

    name = "pull_request_activity"
    primary_key = ["repository_uuid", "pull_request_id", "activity_id"]
    cursor_field = "activity_date"
    page_size = 50
    required_scope = "read:pullrequest:bitbucket"
    resource = "pullrequests/activity"
    repeats_are_shifts = False  # newest first: events arriving mid-walk push the read ones down, nothing is skipped

    def window_start(self, stream_slice: Mapping[str, Any]) -> Any:
        """Entries after this instant are emitted: the cursor less ``LOOKBACK``, never before ``start_date``."""
        return max(parse_datetime(stream_slice["since"]) - LOOKBACK, self.config.start_date)

    def parse_response(
        self,
        response: requests.Response,
        *,
        stream_state: Mapping[str, Any],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        """The page's entries after ``window_start``; a page that reaches it ends the walk."""
        stream_slice = stream_slice or {}
        if response.ok:
            start = self.window_start(stream_slice)
            for item in self.page_items(page_body(response), stream_slice):
                date = parse_datetime(activity_date(item)) if isinstance(item, Mapping) else None
                if date is not None and date <= start:
                    self._walk().done = True  # older entries follow; read no further page
        yield from super().parse_response(response, stream_state=stream_state, stream_slice=stream_slice)

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        kind = activity_type(record)
        date = parse_datetime(activity_date(record))
        if date is not None and date <= self.window_start(stream_slice):
            return
        pull_request = record.get("pull_request")
        record["pull_request_id"] = pull_request.get("id") if isinstance(pull_request, Mapping) else None
        record["activity_type"] = kind
        record["activity_date"] = format_datetime(date) if date else None
        record["actor_uuid"] = actor_uuid(record, kind)
        record["activity_id"] = activity_id(record)
        yield from super().transform(record, stream_slice)


def activity_type(entry: Mapping[str, Any]) -> Optional[str]:
    """The kind of a feed entry: its one key besides ``pull_request`` that holds an object."""
    for key, value in entry.items():
        if key != "pull_request" and isinstance(value, Mapping):
            return key
    return None


def activity_date(entry: Mapping[str, Any]) -> Optional[str]:
    """The raw date of a feed entry (see ``PullRequestActivity``), or None."""
    kind = activity_type(entry)
    event = entry.get(kind) if kind else None
    if not isinstance(event, Mapping):
        return None
    fields = (DATE_FIELDS[kind],) if kind in DATE_FIELDS else ANY_DATE_FIELDS
    return next((event[f] for f in fields if isinstance(event.get(f), str)), None)


def actor_uuid(entry: Mapping[str, Any], kind: Optional[str]) -> Optional[str]:
    """The uuid of who acted: ``update.author``, otherwise the kind's ``user`` (or ``creator``)."""
    event = entry.get(kind) if kind else None
    if not isinstance(event, Mapping):
        return None
    for field in ACTOR_FIELDS:
        account = event.get(field)
        if isinstance(account, Mapping) and isinstance(account.get("uuid"), str):
            return account["uuid"]
    return None


def activity_id(record: Mapping[str, Any]) -> str:
    """The synthetic key of a lifted record (see ``PullRequestActivity``)."""
    kind = record.get("activity_type")
    event = record.get(kind) if kind else None
    comment_id = event.get("id") if kind == "comment" and isinstance(event, Mapping) else None
    if record.get("activity_date") is None and record.get("actor_uuid") is None:
        parts: Any = [record.get("pull_request_id"), kind, event]
    else:
        parts = [record.get("pull_request_id"), kind, record.get("activity_date"), record.get("actor_uuid"), comment_id]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]
