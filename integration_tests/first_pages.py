"""The first page each registered stream asks for, read from the stream instances themselves.

Used by the demo (which endpoint each stream's requests count under) and by the benchmark (the
plain loop's request plan), so that neither restates the streams' paths and parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping

from source_bitbucket import SourceBitbucket
from source_bitbucket.streams.repository_scoped import RepositoryScopedStream


@dataclass(frozen=True)
class FirstPage:
    """One stream's first request in full refresh: ``path`` relative to ``api_url`` (for a stream read
    per repository, the path of the ``repository`` passed to :func:`first_pages`) and ``params``
    (``{name: value or list of values}``, as ``request_params`` gives them)."""

    stream: str
    per_repository: bool
    path: str
    params: Dict[str, Any]

    def to_json(self) -> Dict[str, Any]:
        """``{"stream", "per_repository", "path", "params"}``."""
        return asdict(self)


def first_pages(config: Mapping[str, Any], repository: Mapping[str, str]) -> List[FirstPage]:
    """Every stream of ``SourceBitbucket().streams(config)`` (the registry's order), with its first
    page in full refresh; ``repository`` (``{"uuid", "full_name", "slug"}``) is the one repository
    the repository-scoped streams' slice is built for (``slice_for``)."""
    pages = []
    for stream in SourceBitbucket().streams(config):
        per_repository = isinstance(stream, RepositoryScopedStream)
        stream_slice = stream.slice_for(repository) if per_repository else {}
        params = stream.request_params(stream_state={}, stream_slice=stream_slice)
        pages.append(FirstPage(stream.name, per_repository, stream.path(stream_slice=stream_slice), dict(params)))
    return pages
