"""One module per Bitbucket resource; ``base``, ``repository_scoped``, ``pull_request_scoped``,
``unchanged`` and ``updated_since`` hold what they share."""

from source_bitbucket.streams.commits import Commits
from source_bitbucket.streams.deployments import Deployments
from source_bitbucket.streams.environments import Environments
from source_bitbucket.streams.pipeline_steps import PipelineSteps
from source_bitbucket.streams.pipelines import Pipelines
from source_bitbucket.streams.projects import Projects
from source_bitbucket.streams.pull_request_activity import PullRequestActivity
from source_bitbucket.streams.pull_request_comments import PullRequestComments
from source_bitbucket.streams.pull_request_commits import PullRequestCommits
from source_bitbucket.streams.pull_request_diffstat import PullRequestDiffstat
from source_bitbucket.streams.pull_requests import PullRequests
from source_bitbucket.streams.refs import Branches, Tags
from source_bitbucket.streams.repositories import Repositories
from source_bitbucket.streams.workspace_users import WorkspaceUsers

# The registry: every stream the source offers, in catalog order. Code and tests that need to know
# the streams (names, keys, scopes) read them from here and from the classes' own attributes.
STREAM_CLASSES = (Repositories, PullRequests, Commits, Deployments, WorkspaceUsers, Environments, Pipelines, PipelineSteps,
                  PullRequestActivity, PullRequestComments, PullRequestCommits, PullRequestDiffstat, Branches, Tags, Projects)

__all__ = ["STREAM_CLASSES", "Branches", "Commits", "Deployments", "Environments", "PipelineSteps", "Pipelines", "Projects",
           "PullRequestActivity", "PullRequestComments", "PullRequestCommits", "PullRequestDiffstat", "PullRequests",
           "Repositories", "Tags", "WorkspaceUsers"]
