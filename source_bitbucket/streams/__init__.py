"""One module per Bitbucket resource; ``base`` and ``repository_scoped`` hold what they share."""

from source_bitbucket.streams.commits import Commits
from source_bitbucket.streams.deployments import Deployments
from source_bitbucket.streams.pull_requests import PullRequests
from source_bitbucket.streams.repositories import Repositories
from source_bitbucket.streams.workspace_users import WorkspaceUsers

__all__ = ["Commits", "Deployments", "PullRequests", "Repositories", "WorkspaceUsers"]
