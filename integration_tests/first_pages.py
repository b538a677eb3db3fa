"""The first page each registered stream asks for, read from the stream instances themselves.

Used by the demo (which endpoint each stream's requests count under) and by the benchmark (the
plain loop's request plan), so that neither restates the streams' paths and parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional

from source_bitbucket import SourceBitbucket
from source_bitbucket.streams.pipeline_steps import PipelineSteps
from source_bitbucket.streams.pull_request_comments import PullRequestComments
from source_bitbucket.streams.pull_request_scoped import PullRequestScopedStream
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream

# The pipeline a per-pipeline stream's first page is built for when the caller names none.
EXAMPLE_PIPELINE = {"uuid": "{00000000-0000-0000-0000-0000000000ff}", "created_on": "2020-01-01T00:00:00Z"}
# The pull request a per-pull-request stream's first page is built for when the caller names none.
EXAMPLE_PULL_REQUEST = {"id": 1, "updated_on": "2020-01-01T00:00:00+00:00", "comment_count": 1, "state": "OPEN"}


@dataclass(frozen=True)
class FirstPage:
    """One stream's first request in full refresh: ``path`` relative to ``api_url`` (for a stream read
    per repository, the path of the ``repository`` passed to :func:`first_pages`; for a stream read
    per pipeline, that of the ``pipeline`` too) and ``params`` (``{name: value or list of values}``,
    as ``request_params`` gives them).

    ``per_pipeline``: the stream reads one listing per pipeline of each repository (pipeline_steps:
    ``.../pipelines/{uuid}/steps/``); ``pipelines`` is then the first page of the repository's
    pipeline listing the pipelines come from (``{"stream", "path", "params"}``: the stream whose
    first page it is, e.g. ``pipelines``), else None.

    ``follows_next``: the stream's own ``follows_next`` (False: the connector builds the next page
    on its own URL, since the endpoint's ``next`` drops parameters such as ``sort`` or ``fields``).

    ``per_pull_request``: the stream reads one listing per pull request of each repository (the path
    is that of the ``pull_request`` passed to :func:`first_pages`); ``with_comments_only``: only for
    the pull requests whose ``comment_count`` is above 0 (pull_request_comments).
    """

    stream: str
    per_repository: bool
    path: str
    params: Dict[str, Any]
    per_pipeline: bool = False
    pipelines: Optional[Dict[str, Any]] = None
    follows_next: bool = True
    per_pull_request: bool = False
    with_comments_only: bool = False

    def to_json(self) -> Dict[str, Any]:
        """``{"stream", "per_repository", "path", "params", "per_pipeline", "pipelines", "follows_next",
        "per_pull_request", "with_comments_only"}``."""
        return asdict(self)


def first_pages(config: Mapping[str, Any], repository: Mapping[str, str],
                pipeline: Optional[Mapping[str, str]] = None,
                pull_request: Optional[Mapping[str, Any]] = None) -> List[FirstPage]:
    """Every stream of ``SourceBitbucket().streams(config)`` (the registry's order), with its first
    page in full refresh; ``repository`` (``{"uuid", "full_name", "slug"}``) is the one repository
    the repository-scoped streams' slice is built for (``slice_for``), and ``pipeline``
    (``{"uuid", "created_on"}``, default ``EXAMPLE_PIPELINE``) the pipeline a per-pipeline stream's
    slice gets (``stream_slice["pipeline"]``, what its ``read_slice`` adds for each pipeline), and
    ``pull_request`` (a ref: ``{"id", "updated_on", "comment_count", "state"}``, default
    ``EXAMPLE_PULL_REQUEST``) the one a per-pull-request stream's slice gets."""
    streams = SourceBitbucket().streams(config)
    pipeline = dict(pipeline or EXAMPLE_PIPELINE)
    pages = []
    for stream in streams:
        per_repository = isinstance(stream, RepositoryScopedStream)
        per_pipeline = isinstance(stream, PipelineSteps)
        per_pull_request = isinstance(stream, PullRequestScopedStream)
        stream_slice = dict(stream.slice_for(repository)) if per_repository else {}
        if per_pull_request:
            stream_slice["pull_request"] = dict(pull_request or EXAMPLE_PULL_REQUEST)
        pipelines = None
        if per_pipeline:
            stream_slice["pipeline"] = pipeline
            pipelines = _pipeline_listing(streams, stream, repository)
        params = stream.request_params(stream_state={}, stream_slice=stream_slice)
        pages.append(FirstPage(stream.name, per_repository, stream.path(stream_slice=stream_slice), dict(params),
                               per_pipeline, pipelines, stream.follows_next, per_pull_request,
                               isinstance(stream, PullRequestComments)))
    return pages


def _pipeline_listing(streams, steps: PipelineSteps, repository: Mapping[str, str]) -> Dict[str, Any]:
    """The first page of ``repository``'s pipeline listing: that of the registered stream reading the
    same ``PipelineListing`` as ``steps`` (the pipelines stream), else that of the listing's own reader."""
    listing = steps.pipeline_listing
    source = next((s for s in streams if s is not steps and getattr(s, "pipeline_listing", None) is listing), None)
    reader = source if source is not None else listing.reader
    stream_slice = reader.slice_for(repository)
    return {"stream": reader.name, "path": reader.path(stream_slice=stream_slice),
            "params": dict(reader.request_params(stream_state={}, stream_slice=stream_slice)),
            "follows_next": reader.follows_next}
