"""One module per Bitbucket resource; ``base`` and ``repository_scoped`` hold what they share."""

from source_bitbucket.streams.commits import Commits
from source_bitbucket.streams.deployments import Deployments
from source_bitbucket.streams.environments import Environments
from source_bitbucket.streams.pipeline_steps import PipelineSteps
from source_bitbucket.streams.pipelines import Pipelines
from source_bitbucket.streams.pull_requests import PullRequests
from source_bitbucket.streams.repositories import Repositories
from source_bitbucket.streams.workspace_users import WorkspaceUsers

# The registry: every stream the source offers, in catalog order. Code and tests that need to know
# the streams (names, keys, scopes) read them from here and from the classes' own attributes.
STREAM_CLASSES = (Repositories, PullRequests, Commits, Deployments, WorkspaceUsers, Environments, Pipelines, PipelineSteps)

__all__ = ["STREAM_CLASSES", "Commits", "Deployments", "Environments", "PipelineSteps", "Pipelines", "PullRequests",
           "Repositories", "WorkspaceUsers"]
