"""pipeline_steps: ``GET /repositories/{workspace}/{repository}/pipelines/{uuid}/steps/``, and the one
pipeline listing each sync shares between the pipelines and pipeline_steps streams."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Dict, Iterable, List, Mapping, MutableMapping, Optional, Sequence, Tuple
from urllib.parse import quote

import requests
from airbyte_cdk.models import SyncMode

from source_bitbucket.dates import parse_datetime
from source_bitbucket.streams.base import BitbucketStream
from source_bitbucket.streams.pipelines import OpenPipelines, PipelineRefs, is_completed, pipeline_ref, write_open
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream

# The step fields kept, and the only ones asked for (``fields=``). Never: ``image.username``,
# ``image.password``, ``image.email`` (registry credentials), ``script_commands``,
# ``setup_commands``, ``teardown_commands`` (commands can embed tokens), logs.
STEP_FIELDS = ("type", "uuid", "name", "pipeline", "run_number", "maxTime", "trigger", "state", "started_on",
               "completed_on", "duration_in_seconds", "build_seconds_used")
STEP_IMAGE_FIELDS = ("name",)


class PipelineListing:
    """The pipelines of each repository created after a date, plus some read again by uuid, known
    once per sync and shared: the pipelines stream tells it what it read (``remember``), and
    pipeline_steps asks (``pipelines``) without a request when that covers it.

    ``pipelines(repository, since, again)`` reads what is not known yet with the reader (a
    ``PipelineRefs``: the listing newest first down to ``since``, and ``GET .../pipelines/{uuid}``
    for each uuid of ``again`` not met there). A ref is ``{"uuid", "created_on", "state": {"name"}}``.
    A 404 on the listing (Pipelines off) gives no pipelines. Thread-safe (prefetch threads ask for
    different repositories at once).
    """

    def __init__(self, reader: PipelineRefs) -> None:
        self.reader = reader
        self._windows: Dict[str, Tuple[datetime, List[Mapping[str, Any]]]] = {}
        self._known: Dict[str, Dict[str, Mapping[str, Any]]] = {}  # repository uuid -> pipeline uuid -> ref
        self._locks: Dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def remember(self, repository: Mapping[str, str], since: str, refs: Sequence[Mapping[str, Any]]) -> None:
        """What a read of ``repository`` ({uuid, full_name, slug}) found: every pipeline created after
        ``since`` (ISO date-time), and the ones read again by uuid."""
        with self._lock(repository["uuid"]):
            self._store(repository["uuid"], parse_datetime(since), refs)

    def pipelines(self, repository: Mapping[str, str], since: str, again: Sequence[str]) -> List[Mapping[str, Any]]:
        """The refs of the pipelines of ``repository`` created after ``since``, oldest first, then those
        of ``again`` (uuids) not among them as they are now (a uuid Bitbucket no longer knows is left out)."""
        uuid, bound = repository["uuid"], parse_datetime(since)
        with self._lock(uuid):
            window = self._windows.get(uuid)
            if window is None or bound < window[0]:
                self._store(uuid, bound, self._read(repository, since, None))
            created_after = [ref for ref in self._windows[uuid][1] if (parse_datetime(ref["created_on"]) or bound) > bound]
            listed = {ref["uuid"] for ref in created_after}
            known = self._known[uuid]
            missing = [p for p in again if p not in listed and p not in known]
            for pipeline_uuid in missing:
                self._store(uuid, None, self._read(repository, since, pipeline_uuid))
            return created_after + [known[p] for p in again if p not in listed and p in known]

    def _read(self, repository: Mapping[str, str], since: str, pipeline_uuid: Optional[str]) -> List[Mapping[str, Any]]:
        stream_slice = {"repository": repository, "since": since, **({"pipeline_uuid": pipeline_uuid} if pipeline_uuid else {})}
        return [pipeline_ref(r) for r in BitbucketStream.read_records(self.reader, SyncMode.full_refresh, None, stream_slice, None)]

    def _store(self, uuid: str, bound: Optional[datetime], refs: Sequence[Mapping[str, Any]]) -> None:
        known = self._known.setdefault(uuid, {})
        known.update({ref["uuid"]: ref for ref in refs})
        if bound is not None:
            window = [ref for ref in refs if (parse_datetime(ref["created_on"]) or bound) > bound]
            self._windows[uuid] = (bound, sorted(window, key=lambda ref: parse_datetime(ref["created_on"]) or bound))

    def _lock(self, uuid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uuid, threading.Lock())


class PipelineSteps(OpenPipelines, RepositoryScopedStream):
    """Steps of every pipeline new or open since the last sync. Primary key (``repository_uuid``,
    ``pipeline_uuid``, ``uuid``), cursor ``pipeline_created_on``, ``pagelen`` 100.

    Source: https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pipelines/#api-repositories-workspace-repo-slug-pipelines-pipeline-uuid-steps-get
    and ``shared/docs/bitbucket-api-more-endpoints.md`` 2.4.

    * Slices: one per repository. ``read_slice`` asks the shared ``PipelineListing`` for the
      pipelines created after the repository's cursor and those open at the last sync, and reads
      the steps of each: one request per pipeline (the expensive part of this stream: a first sync
      of a repository with 10,000 pipelines costs 10,000 requests; the progress log gives the count).
    * Records gain ``repository_uuid``, ``repository_full_name``, ``pipeline_uuid`` and
      ``pipeline_created_on`` (the cursor: immutable, so a deduplicating destination keeps the
      rows read last of each step).
    * Only ``STEP_FIELDS`` (and ``image.name``) are asked for (``fields=``) and kept, even when
      Bitbucket sends more: registry credentials and commands never leave this class. PENDING and
      NOT_RUN steps have no dates or durations.
    * State per repository: ``{"pipeline_created_on": <newest pipeline read>, "open": [<pipelines
      not COMPLETED when their steps were read, or whose steps answered 403/404>]}``: their steps are
      read again on later syncs until the pipeline is COMPLETED (and read).
    * A 403/404 on one pipeline's steps skips that pipeline with one warning; it stays open.
    """

    name = "pipeline_steps"
    primary_key = ["repository_uuid", "pipeline_uuid", "uuid"]
    cursor_field = "pipeline_created_on"
    page_size = 100
    required_scope = "read:pipeline:bitbucket"
    follows_next = False  # the next page keeps the fields= whitelist
    listings = ("pipeline_listing",)

    def __init__(self, pipeline_listing: PipelineListing, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline_listing = pipeline_listing
        self._read: Dict[str, List[Mapping[str, Any]]] = {}  # repository uuid -> pipelines read, until on_slice_read
        self._requests = 0  # steps walks in this sync, for the progress log
        self._skipped: Dict[str, set] = {}  # repository uuid -> pipelines whose steps answered 403/404, until on_slice_read

    def read_slice(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]],
        stream_slice: Mapping[str, Any],
        stream_state: Optional[Mapping[str, Any]],
    ) -> Iterable[List[Mapping[str, Any]]]:
        """The steps of each pipeline of the repository to read, one walk each."""
        pipelines = self.pipeline_listing.pipelines(stream_slice["repository"], stream_slice["since"], stream_slice.get("open", []))
        for pipeline in pipelines:
            yield from super().read_slice(sync_mode, cursor_field, {**stream_slice, "pipeline": pipeline}, stream_state)
        self._read[stream_slice["repository"]["uuid"]] = pipelines

    def first_page_params(self, stream_state: Mapping[str, Any], stream_slice: Mapping[str, Any]) -> Mapping[str, Any]:
        wanted = [f"values.{field}" for field in STEP_FIELDS] + [f"values.image.{field}" for field in STEP_IMAGE_FIELDS]
        return {"fields": ",".join(wanted + ["page", "pagelen", "size"])}

    def resource_path(self, stream_slice: Mapping[str, Any]) -> str:
        return f"pipelines/{quote(stream_slice['pipeline']['uuid'], safe='')}/steps/"

    def partition_name(self, stream_slice: Mapping[str, Any]) -> str:
        repository = super().partition_name(stream_slice)
        pipeline = stream_slice.get("pipeline")
        return f"pipeline {pipeline['uuid']} of {repository}" if pipeline else repository

    def transform(self, record: MutableMapping[str, Any], stream_slice: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        step = {field: record[field] for field in STEP_FIELDS if field in record}
        image = record.get("image")
        if isinstance(image, Mapping):
            step["image"] = {field: image[field] for field in STEP_IMAGE_FIELDS if field in image}
        pipeline = stream_slice["pipeline"]
        step["pipeline_uuid"] = pipeline["uuid"]
        step["pipeline_created_on"] = pipeline["created_on"]
        yield from super().transform(step, stream_slice)

    def on_slice_read(self, stream_slice: Mapping[str, Any]) -> None:
        """The repository is read: its cursor moves to the newest pipeline whose steps were read
        (pipelines without steps count as read), and ``open`` lists those not COMPLETED."""
        repository = stream_slice["repository"]
        pipelines = self._read.pop(repository["uuid"], [])
        self._requests += len(pipelines)
        dated = [p for p in pipelines if parse_datetime(p["created_on"]) is not None]
        if dated:
            newest = max(dated, key=lambda p: parse_datetime(p["created_on"]))
            self.advance_state({"repository_uuid": repository["uuid"], "repository_full_name": repository["full_name"],
                                self.cursor_field: newest["created_on"]})
        skipped = self._skipped.pop(repository["uuid"], set())
        write_open(self._state, repository["uuid"], [p["uuid"] for p in pipelines if not is_completed(p) or p["uuid"] in skipped])

    def on_partition_skipped(self, response: requests.Response, stream_slice: Mapping[str, Any]) -> None:
        """One pipeline's steps answered 403/404: one warning, and the pipeline stays in ``open`` so that
        the next sync asks again (if the pipeline itself is gone by then, its single read answers 404
        and it leaves ``open``): the cursor moving past it must not lose its steps."""
        super().on_partition_skipped(response, stream_slice)
        pipeline = stream_slice.get("pipeline")
        if pipeline:
            self._skipped.setdefault(stream_slice["repository"]["uuid"], set()).add(pipeline["uuid"])

    def progress_note(self) -> str:
        return f"{self._requests} steps requests (one per pipeline)"
