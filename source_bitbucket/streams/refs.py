"""branches and tags: ``GET /repositories/{workspace}/{repository}/refs/branches`` and ``…/refs/tags``."""

from __future__ import annotations

from abc import ABC
from typing import Any, Dict, Iterable, List, Mapping, MutableMapping, Optional, Tuple

from airbyte_cdk.models import SyncMode

from source_bitbucket.streams.repository_scoped import RepositoryScopedStream
from source_bitbucket.streams.unchanged import SkipsUnchangedRepositories

# What is kept of a ref's ``target`` (the tip commit), and all that is asked for (``fields=``): a raw
# target is a whole commit (~3 KB with its links and parents).
TARGET_FIELDS = ("hash", "date", "author")


class RefsStream(SkipsUnchangedRepositories, RepositoryScopedStream, ABC):
    """The refs of every repository: one walk of ``refs/{branches|tags}`` per repository, ``pagelen``
    100, ``sort=name`` (stable pages), trimmed with ``fields=`` to ``kept_fields`` and the target's
    ``TARGET_FIELDS`` (and trimmed again here, should the server ignore ``fields``). Primary key
    (``repository_uuid``, ``name``).

    Source: https://developer.atlassian.com/cloud/bitbucket/rest/api-group-refs/ and
    ``shared/docs/bitbucket-api-more-endpoints.md`` 2.1-2.2.

    * Full refresh reads every repository: the current refs (with an overwriting destination,
      deleted refs disappear).
    * Incremental (append + dedup) reads only the repositories whose ``updated_on`` moved since the
      last read (``SkipsUnchangedRepositories``: refs move only with pushes), and every repository
      once a week. Refs have no timestamp of their own (a tag's ``date`` is null when it is
      lightweight, a branch's tip date is its commit's), so the cursor is ``repository_updated_on``:
      the repository's ``updated_on`` in the listing the refs were read with, which grows with every
      read of the repository, so a deduplicating destination keeps the latest version of each ref.
      Deleted refs stay in an incremental destination.
    * State per repository: ``{"repository_updated_on", "checked_on"}``, written once it is read
      (also when it has no refs), under ``RepositoryCursors``' safety rule.
    """

    cursor_field = "repository_updated_on"
    primary_key = ["repository_uuid", "name"]
    page_size = 100
    required_scope = "read:repository:bitbucket"
    kept_fields: Tuple[str, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listed: Dict[str, Optional[str]] = {}  # repository uuid -> its listed updated_on, when read

    def slice_extras(self, repository: Mapping[str, str], incremental: bool) -> Mapping[str, Any]:
        listed = self.listed_updated_on(repository["uuid"])
        unchanged = incremental and self.is_unchanged(self.state.get(repository["uuid"]), repository["uuid"])
        return {"repository_updated_on": listed, "unchanged": unchanged}

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        wanted = [f"values.{field}" for field in self.kept_fields] + [f"values.target.{field}" for field in TARGET_FIELDS]
        return {"sort": "name", "fields": ",".join(wanted + ["next", "page", "pagelen", "size"])}

    def read_slice(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]],
        stream_slice: Mapping[str, Any],
        stream_state: Optional[Mapping[str, Any]],
    ) -> Iterable[List[Mapping[str, Any]]]:
        if stream_slice.get("unchanged"):
            return  # no push since the last read: the refs are as read then (no request)
        yield from super().read_slice(sync_mode, cursor_field, stream_slice, stream_state)

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        ref = {field: record[field] for field in self.kept_fields if field in record}
        target = record.get("target")
        if isinstance(target, Mapping):
            ref["target"] = {field: target[field] for field in TARGET_FIELDS if field in target}
        ref["repository_updated_on"] = stream_slice.get("repository_updated_on")
        yield from super().transform(ref, stream_slice)

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        """The repository is read (or skipped as unchanged): its entry gets the listed ``updated_on``
        (as a cursor, under the safety rule: a push during the sync keeps the older value, so the
        next sync reads it again) and ``checked_on``."""
        if stream_slice.get("unchanged"):
            return
        repository = stream_slice["repository"]
        checked = self.checked(stream_slice.get("repository_updated_on"))
        if not checked:
            return
        self.advance_state({"repository_uuid": repository["uuid"], "repository_full_name": repository["full_name"],
                            self.cursor_field: checked["repository_updated_on"]})
        entry = self._state.get(repository["uuid"])
        if isinstance(entry, Mapping) and entry.get(self.cursor_field) == checked["repository_updated_on"]:
            self._state[repository["uuid"]] = {**entry, "checked_on": checked["checked_on"]}


class Branches(RefsStream):
    """Branches of every repository: ``name``, ``target`` (the tip: hash, date, author),
    ``default_merge_strategy``, ``merge_strategies``. See ``RefsStream``."""

    name = "branches"
    resource = "refs/branches"
    kept_fields = ("name", "type", "default_merge_strategy", "merge_strategies")


class Tags(RefsStream):
    """Tags of every repository: ``name``, ``target`` (the tagged commit: hash, date, author), and for
    annotated tags ``date``, ``message`` and ``tagger`` (null on lightweight tags). See ``RefsStream``."""

    name = "tags"
    resource = "refs/tags"
    kept_fields = ("name", "type", "date", "message", "tagger")
