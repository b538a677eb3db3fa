"""A local Bitbucket Cloud API sandbox: a generated workspace served over real HTTP on 127.0.0.1.

Typical use in a test::

    from integration_tests.sandbox import SandboxServer, generate_workspace

    ws = generate_workspace(seed=1)
    with SandboxServer(ws) as server:          # server.api_url == "http://127.0.0.1:PORT/2.0"
        ...                                    # first sync against server.api_url
        ws.push_commits("api-gateway", 3)      # change the data between two syncs
        truth = ws.records("commits")          # ground truth, raw API shape
        server.add_fault("403", repository="api-gateway", times=None)   # no access to one repository
    with SandboxServer(ws, scopes=["read:repository:bitbucket"]) as server:
        ...                                    # pull requests, deployments, members answer 403 (scope)

Run ``python -m integration_tests.sandbox --help`` to serve it from a terminal.
"""

from .data import MUTATIONS, PIPELINE_STREAMS, REVIEW_STREAMS, STREAMS, Workspace, generate_workspace
from .faults import KINDS as FAULT_KINDS
from .faults import FaultRule, FaultSet
from .scopes import ALL_SCOPES
from .server import SandboxServer

__all__ = ["ALL_SCOPES", "FAULT_KINDS", "MUTATIONS", "PIPELINE_STREAMS", "REVIEW_STREAMS", "STREAMS", "FaultRule", "FaultSet",
           "SandboxServer", "Workspace", "generate_workspace"]
