"""Serve a generated Bitbucket workspace in the foreground until Ctrl-C / SIGTERM.

Usage::

    python -m integration_tests.sandbox [--port 8765] [--seed 1] [--repositories 10 --pull-requests 300
        --commits 600 --deployments 60 --members 12] [--latency-ms 0] [--workspace acme-sandbox]
        [--email dev@example.com] [--api-token sandbox-token] [--scopes read:repository:bitbucket,...]
        [--config-out secrets/sandbox_config.json] [--verbose]

It writes a connector config for itself to ``--config-out`` (workspace, email, api_token, api_url) and
prints the file's path and content, so ``python main.py read --config secrets/sandbox_config.json ...``
reads from it.

Change the data or inject faults while it runs, e.g.::

    curl -X POST localhost:8765/_sandbox/mutate -d '{"op": "push_commits", "args": {"repo_slug": "api-gateway", "n": 3}}'
    curl -X POST localhost:8765/_sandbox/faults -d '{"kind": "429", "path_contains": "/commits", "times": 2}'
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from .data import generate_workspace
from .scopes import ALL_SCOPES
from .server import SandboxServer

DEFAULT_CONFIG_OUT = "secrets/sandbox_config.json"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line options (defaults = the default generated workspace)."""
    parser = argparse.ArgumentParser(prog="python -m integration_tests.sandbox",
                                     description="Local Bitbucket Cloud API sandbox (fake data, fake credentials). While it runs, GET /_sandbox/ lists the control endpoints: change data (POST /_sandbox/mutate), inject faults (POST /_sandbox/faults).")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repositories", type=int, default=10)
    parser.add_argument("--pull-requests", type=int, default=300)
    parser.add_argument("--commits", type=int, default=600)
    parser.add_argument("--deployments", type=int, default=60)
    parser.add_argument("--members", type=int, default=12)
    parser.add_argument("--latency-ms", type=int, default=0, help="sleep added to every API request")
    parser.add_argument("--workspace", default="acme-sandbox", help="workspace slug")
    parser.add_argument("--email", default="dev@example.com", help="Basic-auth username the sandbox accepts")
    parser.add_argument("--api-token", default="sandbox-token", help="Basic-auth password the sandbox accepts")
    parser.add_argument("--scopes", type=_scope_list, default=None,
                        help="comma-separated scopes of the token (default: all of " + ", ".join(ALL_SCOPES)
                             + "); an endpoint whose scope is missing answers 403")
    parser.add_argument("--config-out", default=DEFAULT_CONFIG_OUT, metavar="PATH",
                        help=f"where to write the connector config for this sandbox (default {DEFAULT_CONFIG_OUT}; '' = none)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def _scope_list(text: str) -> List[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def connector_config(server: SandboxServer) -> Dict[str, Any]:
    """The connector config that reads from ``server``: workspace slug, email, api_token, api_url."""
    return {"workspace": server.workspace.slug, "email": server.email, "api_token": server.api_token,
            "api_url": server.api_url}


def write_config(server: SandboxServer, path: str) -> Path:
    """Write ``connector_config(server)`` as JSON to ``path`` (parent folders created) and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(connector_config(server), indent=2) + "\n", encoding="utf-8")
    return target


def main(argv: Optional[List[str]] = None) -> int:
    """Generate the workspace, print the URL, credentials and scopes, write the config, serve until stopped."""
    args = parse_args(argv)
    workspace = generate_workspace(seed=args.seed, repositories=args.repositories, pull_requests=args.pull_requests,
                                   commits=args.commits, deployments=args.deployments, members=args.members,
                                   slug=args.workspace)
    try:
        server = SandboxServer(workspace, email=args.email, api_token=args.api_token, latency_ms=args.latency_ms,
                               port=args.port, verbose=args.verbose, scopes=args.scopes).bind()
    except OSError as error:  # e.g. the port is taken by another sandbox
        print(f"sandbox: cannot listen on 127.0.0.1:{args.port} ({error.strerror or error}); "
              "stop what uses it, or pass --port 0 for any free port.", file=sys.stderr)
        return 1

    def _stop(signum, frame):  # SIGTERM -> same clean exit as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    print(f"Bitbucket sandbox serving workspace '{workspace.slug}' at {server.api_url} "
          f"(email={args.email} api_token={args.api_token}; control: {server.origin}/_sandbox/)", flush=True)
    print("token scopes: " + ("all (" + ", ".join(ALL_SCOPES) + ")" if args.scopes is None else ", ".join(args.scopes)
                              or "none"), flush=True)
    if args.config_out:
        path = write_config(server, args.config_out)
        print(f"connector config written to {path}:\n{path.read_text(encoding='utf-8')}", end="", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
