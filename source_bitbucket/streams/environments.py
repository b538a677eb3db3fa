"""environments: ``GET /repositories/{workspace}/{repository}/environments``."""

from __future__ import annotations

from source_bitbucket.streams.repository_scoped import RepositoryScopedStream


class Environments(RepositoryScopedStream):
    """Deployment environments of every repository. Primary key (``repository_uuid``, ``uuid``),
    full refresh only (environments carry no timestamps), ``pagelen`` 100 (the endpoint's maximum).

    Kept as they come: ``environment_type{name, rank}`` (Test, Staging, Production: what
    "deployments to production" are counted by, joined from ``deployments.environment.uuid``),
    ``category``, ``rank``, ``lock``, ``hidden``, ``deployment_gate_enabled``. A repository without
    environments answers an empty page (``pagelen: 0``); a 403 or 404 skips the repository with one
    warning. Source: https://developer.atlassian.com/cloud/bitbucket/rest/api-group-deployments/#api-repositories-workspace-repo-slug-environments-get
    """

    name = "environments"
    primary_key = ["repository_uuid", "uuid"]
    page_size = 100
    required_scope = "read:pipeline:bitbucket"
    resource = "environments"
