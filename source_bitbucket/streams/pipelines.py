"""pipelines: ``GET /repositories/{workspace}/{repository}/pipelines/``, and the trimmed reader the
pipeline_steps stream uses when it reads the listing itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, MutableMapping, Optional, Tuple
from urllib.parse import quote, urlparse

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bitbucket.dates import parse_datetime
from source_bitbucket.errors import is_object
from source_bitbucket.streams.pagination import page_body
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream

if TYPE_CHECKING:
    from source_bitbucket.streams.pipeline_steps import PipelineListing

# What pipeline_steps needs of a pipeline (``PipelineListing``): the trimmed reader asks for nothing else.
PIPELINE_REF_FIELDS = ("uuid", "created_on", "state")


def is_completed(pipeline: Mapping[str, Any]) -> bool:
    """Whether a pipeline (record or ref) reached its final state: ``state.name == "COMPLETED"``.
    PENDING and IN_PROGRESS ones (RUNNING, PAUSED, HALTED) still change."""
    state = pipeline.get("state")
    return isinstance(state, Mapping) and state.get("name") == "COMPLETED"


def pipeline_ref(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """``{"uuid", "created_on", "state": {"name"}}`` of a pipeline record."""
    state = record.get("state")
    return {"uuid": record["uuid"], "created_on": record.get("created_on"),
            "state": {"name": state.get("name")} if isinstance(state, Mapping) else None}


def open_uuids(stream_state: Optional[Mapping[str, Any]], repository: Mapping[str, str]) -> List[str]:
    """The ``open`` list of a repository's state entry: the pipelines not COMPLETED when last read
    (strings only, whatever a hand-edited state holds); [] in full refresh (``stream_state`` None)."""
    entry = (stream_state or {}).get(repository["uuid"])
    listed = entry.get("open") if isinstance(entry, Mapping) else None
    return sorted({uuid for uuid in listed if isinstance(uuid, str) and uuid}) if isinstance(listed, list) else []


def write_open(state: MutableMapping[str, Any], repository_uuid: str, uuids: Iterable[str]) -> None:
    """Set a repository's ``open`` list in ``state`` (sorted; the key is removed when empty, and
    an entry left empty too). The entry is replaced by a new dict: STATE messages already emitted
    keep their values."""
    entry = state.get(repository_uuid)
    entry = {k: v for k, v in entry.items() if k != "open"} if isinstance(entry, Mapping) else {}
    uuids = sorted(set(uuids))
    if uuids:
        entry["open"] = uuids
    if entry:
        state[repository_uuid] = entry
    else:
        state.pop(repository_uuid, None)


def unreadable_open(state: Mapping[str, Any], cursor_field: str) -> Tuple[Dict[str, Any], List[str]]:
    """``state`` without the cursor of each repository whose ``open`` list cannot be read (not a list,
    or an item that is not a uuid string): those repositories are read again from an older cursor or
    ``start_date`` (duplicates, never losses: the open pipelines it named are among them). Returns the
    state to use and one problem per repository."""
    clean: Dict[str, Any] = dict(state or {})
    problems: List[str] = []
    for key, entry in list(clean.items()):
        if not isinstance(entry, Mapping) or "open" not in entry:
            continue
        listed = entry["open"]
        if isinstance(listed, list) and all(isinstance(uuid, str) and uuid for uuid in listed):
            continue
        problems.append(f"the open pipelines of repository {key} ({listed!r:.80}) are not a list of pipeline uuids: "
                        "its pipelines are read again from start_date")
        rest = {k: v for k, v in entry.items() if k not in ("open", cursor_field)}
        if rest:
            clean[key] = rest
        else:
            del clean[key]
    return clean, problems


class OpenPipelines:
    """What pipelines and pipeline_steps share about the pipelines open at the last sync: the slice's
    ``open`` list (from the repository's state entry) and the check of incoming ``open`` lists."""

    def slice_extras(self, repository: Mapping[str, str], incremental: bool) -> Mapping[str, Any]:
        return {"open": open_uuids(self.state if incremental else None, repository)}

    def _use_state(self, value: Mapping[str, Any]) -> None:
        clean, problems = unreadable_open(value, self.cursor_field)
        for problem in problems:
            self.logger.warning(f"{self.name}: {problem}. It is not written back (duplicates possible, nothing lost).")
        super()._use_state(clean)


class Pipelines(OpenPipelines, RepositoryScopedStream):
    """Pipelines of every repository. Primary key (``repository_uuid``, ``uuid``), cursor
    ``created_on``, ``pagelen`` 100 (the endpoint's maximum).

    Source: https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pipelines/ and the traps in
    ``shared/docs/bitbucket-api-more-endpoints.md`` 2.3:

    * The path needs its trailing slash (``pipelines/``; without it Bitbucket may answer 404).
    * No server-side date filter (``q`` is ignored): the listing is read newest first
      (``sort=-created_on``) and the walk stops after the page that reaches the repository's
      cursor. ``next`` drops ``sort`` (page 2 onwards would silently be oldest first), so the next
      page is built on our own URL (``follows_next = False``, ``next_page_number_url``). Pipelines
      arriving during the walk push those read onto the next page: repeats are dropped, not a
      shift. A page out of newest-first order fails the repository (a sort Bitbucket ignored
      would otherwise stop the walk at the oldest pipeline and lose every new one).
    * A pipeline changes until it is COMPLETED (``state``, ``completed_on``, durations); HALTED
      and PAUSED ones stay open for days. State per repository: ``{"created_on": <newest read>,
      "open": [<uuids not COMPLETED when read>]}``; each open pipeline older than the cursor is
      read again (``GET .../pipelines/{uuid}``, one request each) on every sync until it is
      COMPLETED, so the destination ends with every pipeline's final state.
    * Cursor ``created_on``: immutable, so every version of a pipeline ties on it and a
      deduplicating destination keeps the version extracted last, which is the latest read
      (``completed_on`` would be null on a re-run and lose to the earlier completed version).
    * ``variables`` (run-time variables of custom pipelines) can hold clear-text values: never
      emitted; ``has_variables`` says whether there were any.
    * Pipelines off: 404 (one info line for the repository); enabled but never run: an empty page
      with ``pagelen: 0``. Both are "no pipelines".
    """

    name = "pipelines"
    primary_key = ["repository_uuid", "uuid"]
    cursor_field = "created_on"
    page_size = 100
    required_scope = "read:pipeline:bitbucket"
    resource = "pipelines/"
    repeats_are_shifts = False
    follows_next = False
    listings = ("pipeline_listing",)
    feature_off_statuses = frozenset({404})
    feature_off = "Pipelines is off, or the repository was deleted during the sync"

    def __init__(self, pipeline_listing: Optional["PipelineListing"] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline_listing = pipeline_listing  # told what was read, for pipeline_steps
        self._read: Dict[str, List[Mapping[str, Any]]] = {}  # repository uuid -> refs read, until on_slice_read

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        return {} if stream_slice.get("pipeline_uuid") else {"sort": "-created_on"}

    def resource_path(self, stream_slice: Mapping[str, Any]) -> str:
        """``pipelines/`` (the listing) or ``pipelines/{uuid}`` (one pipeline read again)."""
        uuid = stream_slice.get("pipeline_uuid")
        return f"pipelines/{quote(uuid, safe='')}" if uuid else self.resource

    def partition_name(self, stream_slice: Mapping[str, Any]) -> str:
        repository = super().partition_name(stream_slice)
        uuid = stream_slice.get("pipeline_uuid")
        return f"pipeline {uuid} of {repository}" if uuid else repository

    def read_slice(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]],
        stream_slice: Mapping[str, Any],
        stream_state: Optional[Mapping[str, Any]],
    ) -> Iterable[List[Mapping[str, Any]]]:
        """One repository: the listing down to its cursor, then each pipeline open at the last sync
        and not met in the listing, read again by uuid."""
        read: List[Mapping[str, Any]] = []
        for page in super().read_slice(sync_mode, cursor_field, stream_slice, stream_state):
            read.extend(pipeline_ref(record) for record in page)
            yield page
        listed = {ref["uuid"] for ref in read}
        for uuid in stream_slice.get("open", []):
            if uuid not in listed:
                for page in super().read_slice(sync_mode, cursor_field, {**stream_slice, "pipeline_uuid": uuid}, stream_state):
                    read.extend(pipeline_ref(record) for record in page)
                    yield page
        self._read[stream_slice["repository"]["uuid"]] = read

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        """The repository is read: its ``open`` list becomes the pipelines read now and not COMPLETED
        (those re-read and now COMPLETED leave it), and the shared listing learns what was read."""
        repository = stream_slice["repository"]
        read = self._read.pop(repository["uuid"], [])
        write_open(self._state, repository["uuid"], [ref["uuid"] for ref in read if not is_completed(ref)])
        if self.pipeline_listing is not None:
            self.pipeline_listing.remember(repository, stream_slice["since"], read)

    def is_whole_answer(self, response: requests.Response) -> bool:
        """A listing page (the path ends with ``/``), or one pipeline read again: an object with its ``uuid``."""
        if urlparse(response.request.url).path.endswith("/"):
            return super().is_whole_answer(response)
        return is_object(response, "uuid")

    def page_items(self, body: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> List[Any]:
        """A page's ``values``; one pipeline read again is the whole body."""
        if stream_slice.get("pipeline_uuid"):
            return [body] if body.get("uuid") else []
        return super().page_items(body, stream_slice)

    def parse_response(
        self,
        response: requests.Response,
        *,
        stream_state: Mapping[str, Any],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        """The page's pipelines created after ``since`` (every one read again by uuid). A listing page
        that reaches ``since`` ends the walk; one out of newest-first order fails the repository."""
        stream_slice = stream_slice or {}
        if response.ok and not stream_slice.get("pipeline_uuid"):
            self._follow_order(page_body(response), stream_slice)
        yield from super().parse_response(response, stream_state=stream_state, stream_slice=stream_slice)

    def _follow_order(self, body: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> None:
        walk = self._walk()
        since = parse_datetime(stream_slice["since"])
        for item in super().page_items(body, stream_slice):
            created = parse_datetime(item.get("created_on")) if isinstance(item, Mapping) else None
            if created is None:
                continue
            if walk.last is not None and created > walk.last:
                message = (f"Bitbucket listed the pipelines of {self.partition_name(stream_slice)} out of newest-first order "
                           "(sort=-created_on not applied); stopping rather than missing pipelines. Please report it.")
                raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
            walk.last = created
            if created <= since:
                walk.done = True  # every later page is older still

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        variables = record.pop("variables", None)
        if record.get("has_variables") is None:
            record["has_variables"] = bool(variables)
        created = parse_datetime(record.get("created_on"))
        if stream_slice.get("pipeline_uuid") or created is None or created > parse_datetime(stream_slice["since"]):
            yield from super().transform(record, stream_slice)


    def on_partition_skipped(self, response: requests.Response, stream_slice: Mapping[str, Any]) -> None:
        """A pipeline read again by uuid that answers 403/404 is gone: one info line (it leaves
        ``open``); the listing's answers are logged as for every repository-scoped stream."""
        uuid = stream_slice.get("pipeline_uuid")
        if uuid:
            self.logger.info(f"{self.name}: {self.partition_name(stream_slice)} is no longer found (HTTP {response.status_code}); "
                             "it is not read again.")
        else:
            super().on_partition_skipped(response, stream_slice)


class PipelineRefs(Pipelines):
    """The reader of ``PipelineListing`` when pipeline_steps reads the listing itself: the pipelines
    endpoint read the same way, trimmed with ``fields=`` to ``PIPELINE_REF_FIELDS``. Not a
    registered stream; it keeps no state."""

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        if stream_slice.get("pipeline_uuid"):
            return {"fields": ",".join(PIPELINE_REF_FIELDS)}
        wanted = ",".join(f"values.{field}" for field in PIPELINE_REF_FIELDS)
        return {**super().first_page_params(stream_state, stream_slice), "fields": f"{wanted},page,pagelen,size"}
