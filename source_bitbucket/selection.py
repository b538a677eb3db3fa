"""Which repositories of the workspace a sync reads: the config's ``repositories``, ``excluded_repositories``,
``projects``, ``skip_forks`` and ``partition``.

The selection applies to the repository listing (``GET /repositories/{workspace}``), so to the
``repositories`` stream and to every repository-scoped stream alike. ``projects`` is sent to the server
as BBQL (``q=project.key="A" OR project.key="B"``: fewer pages); the rest is decided here per listed
repository. ``partition`` keeps the repositories whose uuid falls in bucket ``index`` of ``count``
(SHA-256 of the uuid, so a repository never changes bucket and adding one moves no other): a workspace
too big for one token's hourly budget runs as ``count`` connections, each with its own token and state.
The workspace-level streams (``workspace_users``, ``projects``) are read only by bucket 0.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Mapping, Optional, Tuple


@dataclass(frozen=True)
class Partition:
    """Bucket ``index`` (0-based) of ``count``."""

    index: int
    count: int


def bucket(uuid: str, count: int) -> int:
    """The bucket (0 to ``count`` - 1) of a repository uuid: the first 8 bytes of its SHA-256, modulo
    ``count``. The uuid is normalised (braces, lower case) so that both spellings land together."""
    normalised = uuid.strip().strip("{}").lower()
    return int.from_bytes(hashlib.sha256(normalised.encode()).digest()[:8], "big") % count


@dataclass(frozen=True)
class RepositorySelection:
    """The repositories a sync reads.

    Attributes:
        included: glob patterns (``data-*``) a slug must match (any of them); empty: every repository.
        excluded: glob patterns no slug may match. Matching ignores case (slugs are lower case).
        projects: project keys (``PLAT``); empty: every project.
        skip_forks: leave out forks (repositories with a ``parent``).
        partition: the bucket kept, or None (all).
    """

    included: Tuple[str, ...] = ()
    excluded: Tuple[str, ...] = ()
    projects: Tuple[str, ...] = ()
    skip_forks: bool = False
    partition: Optional[Partition] = None

    @property
    def everything(self) -> bool:
        """Whether every repository of the workspace is read."""
        return self == RepositorySelection()

    @property
    def reads_workspace_streams(self) -> bool:
        """Whether this connection reads the workspace-level streams: only bucket 0 of a partition does."""
        return self.partition is None or self.partition.index == 0

    def bbql(self) -> Optional[str]:
        """The server-side part: ``project.key="A" OR project.key="B"``, or None."""
        if not self.projects:
            return None
        return " OR ".join(f'project.key="{key}"' for key in self.projects)

    def keeps(self, repository: Mapping[str, Any]) -> bool:
        """Whether a listed repository (``{"uuid", "slug", "parent", "project": {"key"}}``) is read."""
        slug = str(repository.get("slug") or "").lower()
        if self.included and not any(fnmatchcase(slug, pattern.lower()) for pattern in self.included):
            return False
        if any(fnmatchcase(slug, pattern.lower()) for pattern in self.excluded):
            return False
        if self.projects:
            project = repository.get("project")
            if not isinstance(project, Mapping) or project.get("key") not in self.projects:
                return False
        if self.skip_forks and repository.get("parent"):
            return False
        if self.partition is not None:
            uuid = repository.get("uuid")
            if not isinstance(uuid, str) or bucket(uuid, self.partition.count) != self.partition.index:
                return False
        return True

    def describe(self) -> str:
        """One line for logs and ``check``: what is selected."""
        parts = []
        if self.included:
            parts.append(f"repositories {', '.join(self.included)}")
        if self.excluded:
            parts.append(f"excluding {', '.join(self.excluded)}")
        if self.projects:
            parts.append(f"projects {', '.join(self.projects)}")
        if self.skip_forks:
            parts.append("no forks")
        if self.partition is not None:
            parts.append(f"partition {self.partition.index} of {self.partition.count}")
        return "; ".join(parts) or "every repository"
