"""``SandboxServer``: a real HTTP server on 127.0.0.1 serving a generated Bitbucket workspace.

Basic auth (email + API token) is required on ``/2.0/...``, and the token's ``scopes`` (``scopes.py``;
None = all) decide which endpoints answer; ``/_sandbox/...`` control endpoints (mutate, faults, scopes,
requests, records, switches, info) need none and are not logged. Every API request is logged, delayed by
``latency_ms`` and checked against the fault rules before being answered.
"""

from __future__ import annotations

import base64
import email.utils
import json
import socket
import sys
import threading
import time
import traceback
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from . import scopes as scope_rules
from .api import Api
from .protocol import Request, Response, error_response, json_response
from .resources import endpoint_kind, kinds
from .data import MUTATIONS, PIPELINE_STREAMS, REVIEW_STREAMS, STREAMS
from .shapes import rebase
from .util import to_datetime
from .faults import ALTERING, FaultRule, FaultSet, repository_key
from .faults import KINDS as FAULT_KINDS
from .oauth import TOKEN_PATH, TokenIssuer

UNAUTHORIZED = (
    "Authentication failed: the email address and API token did not match a Bitbucket account.\n"
    "Use your Atlassian account email as the username and a scoped API token as the password.\n"
    "For more details on API authentication methods see our documentation:\n"
    "https://developer.atlassian.com/cloud/bitbucket/rest/intro/#authentication\n"
)
BAD_GATEWAY = ("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1>"
               "<p>The server returned an invalid or incomplete response.</p></body></html>\n")

# Requests with a longer path and query answer 414 (the common 8 KB limit of front-end proxies; Bitbucket's
# own is not documented, which is why it documents the POST form of /commits "to avoid URL length issues").
MAX_URL_LENGTH = 8192
SWITCHES = ("pipelines_next_link", "ignore_fields")  # Workspace attributes (data.py)
CONTROL_HELP = {
    "POST /_sandbox/mutate": {"body": {"op": "one of " + ", ".join(MUTATIONS), "args": {"repo_slug": "..."}},
                              "example": {"op": "push_commits", "args": {"repo_slug": "api-gateway", "n": 3}}},
    "POST /_sandbox/faults": {"body": {"kind": "one of " + ", ".join(FAULT_KINDS), "path_contains": "/commits",
                                       "repository": "slug or {uuid} (optional, matches either)", "times": 2},
                              "example": {"kind": "403", "repository": "api-gateway", "times": None}},
    "GET|DELETE /_sandbox/faults": "list or clear the fault rules",
    "GET|DELETE /_sandbox/requests": "the request log and counts per endpoint, or clear it",
    "GET /_sandbox/records/{stream}": "ground truth: every current object of a stream",
    "GET|PUT /_sandbox/scopes": {"body": {"scopes": ["read:repository:bitbucket", "..."]},
                                 "meaning": "the token's scopes (null = all); a missing one answers 403"},
    "GET|PUT /_sandbox/switches": {"body": {name: "true or false" for name in SWITCHES},
                                   "meaning": "the workspace's behaviour switches (pipelines module)"},
    "GET /_sandbox/info": "api_url, credentials, scopes, workspace, clock",
}


class SandboxServer:
    """Serve ``workspace`` over HTTP on ``host:port`` (port 0 = a free port) in a daemon thread.

    Use as a context manager (or ``start()`` / ``stop()``); ``api_url`` is
    ``http://127.0.0.1:PORT/2.0``. ``requests`` is the log of API calls as
    ``(method, path, {param: [values]})``; ``faults`` / ``add_fault`` inject failures at run time.
    ``scopes``: the token's scopes (None = every scope granted; settable at run time); an endpoint whose
    scope is missing answers Bitbucket's 403 (``scopes.py``). Besides ``email`` and ``api_token`` (HTTP
    basic), it accepts the Bearer ``access_tokens`` and the tokens ``oauth`` issues on
    ``POST /site/oauth2/access_token`` (``oauth.py``); an expired OAuth token answers 401.
    """

    def __init__(self, workspace, email: str = "dev@example.com", api_token: str = "sandbox-token",
                 latency_ms: int = 0, port: int = 0, host: str = "127.0.0.1", verbose: bool = False,
                 scopes: Optional[List[str]] = None, clock_dates: bool = False,
                 access_tokens: Sequence[str] = (), oauth: Optional[TokenIssuer] = None,
                 rate_limit: Optional[int] = None, rate_window_s: float = 3600.0):
        self.workspace = workspace
        # Scaled rate limits for Bearer requests: at most rate_limit per rolling rate_window_s (an hour on
        # Bitbucket; shorter in tests), announced with X-RateLimit-* headers; 429 beyond. rate_limited counts the 429s.
        self.rate_limit, self.rate_window_s = rate_limit, rate_window_s
        self._bearer_times: List[float] = []
        self.rate_limited = 0
        self.access_tokens = set(access_tokens)  # Bearer tokens accepted as they are (access tokens)
        self.oauth = oauth  # the OAuth consumer whose issued tokens are accepted (oauth.py)
        self.clock_dates = clock_dates  # True: the Date header tells the workspace's clock, as Bitbucket's tells its own
        self.email, self.api_token = email, api_token
        self.scopes = None if scopes is None else list(scopes)
        self.latency_ms = latency_ms
        self.host, self.port, self.verbose = host, port, verbose
        self.faults = FaultSet()
        self.api = Api(workspace)
        self._requests: List[Tuple[str, str, Dict[str, List[str]]]] = []
        self._log_lock = threading.Lock()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------ lifecycle
    def bind(self) -> "SandboxServer":
        """Create the listening socket (without serving yet)."""
        if self._httpd is None:
            handler = type("SandboxHandler", (_Handler,), {"sandbox": self})
            self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
            self._httpd.daemon_threads = True
            self.port = self._httpd.server_address[1]
        return self

    def start(self) -> "SandboxServer":
        """Bind and serve in a daemon thread."""
        self.bind()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"bitbucket-sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Bind and serve in the calling thread (used by the CLI)."""
        self.bind()
        self._httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join(timeout=5)
            self._httpd.server_close()
            self._httpd, self._thread = None, None

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Base URL of the API, ``http://127.0.0.1:PORT/2.0``."""
        return f"{self.origin}/2.0"

    # ------------------------------------------------------------ request log
    @property
    def requests(self) -> List[Tuple[str, str, Dict[str, List[str]]]]:
        """Snapshot of the API request log: ``(method, path, query dict-of-lists)``."""
        with self._log_lock:
            return list(self._requests)

    def request_counts(self) -> Dict[str, int]:
        """``{kind: count}`` over every kind of ``resources.kinds()``: repositories, pullrequests,
        deployments, members, commits, other (and any kind registered in ``resources.PAGED``)."""
        counts = Counter(endpoint_kind(path) for _, path, _ in self.requests)
        return {k: counts.get(k, 0) for k in kinds()}

    def reset_requests(self) -> None:
        """Empty the request log."""
        with self._log_lock:
            self._requests.clear()

    def _log(self, method: str, path: str, query: str) -> None:
        with self._log_lock:
            self._requests.append((method, path, parse_qs(query, keep_blank_values=True)))

    # ------------------------------------------------------------ faults
    def add_fault(self, kind: str, path_contains: Optional[str] = None, times: Optional[int] = 1, **options) -> FaultRule:
        """Arm a fault rule (see ``faults.py`` for kinds and options, e.g. ``repository="slug-or-{uuid}"``)."""
        return self.faults.add(kind, path_contains, times, **options)

    def clear_faults(self) -> None:
        """Disarm every fault rule."""
        self.faults.clear()

    # ------------------------------------------------------------ answering
    def authorized(self, header: Optional[str]) -> bool:
        """Whether an Authorization header carries the sandbox's Basic credentials, one of its access
        tokens, or a valid token of its OAuth consumer."""
        if header and header.lower().startswith("bearer "):
            token = header[7:].strip()
            return token in self.access_tokens or (self.oauth is not None and self.oauth.accepts(token))
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user.lower() == self.email.lower() and password == self.api_token

    def request_origin(self, headers) -> str:
        """``http://`` + the request's Host header as sent (port included); the server's origin without one.

        Every link of an answer (``next``, ``previous``, ``links.self``, every API href) is built on it.
        """
        host = (headers.get("Host") or "").strip()
        if not host or any(c.isspace() or c in '"\\/?#@' for c in host):
            return self.origin
        return f"http://{host}"

    def answer_api(self, method: str, path: str, query: str, body: bytes, headers) -> Optional[Response]:
        """Log, delay, fault-check, authenticate and route one API request (None = drop the connection)."""
        self._log(method, path, query)
        origin = self.request_origin(headers)
        latency, rule = self.faults.take(path + ("?" + query if query else ""), self.repository_keys(path))
        if self.latency_ms or latency:
            time.sleep((self.latency_ms + latency) / 1000)
        if rule is not None and rule.kind not in ALTERING:
            return _fault_response(rule, path, self.scopes)
        if len(path) + len(query) + 1 > MAX_URL_LENGTH:
            return Response(414, b"URI Too Long", "text/plain")
        if not self.authorized(headers.get("Authorization")):
            return Response(401, UNAUTHORIZED.encode(), "text/plain",
                            {"WWW-Authenticate": 'Basic realm="Bitbucket.org HTTP"'})
        limited = self._scaled_limit(headers.get("Authorization"))
        if limited is not None and limited.status == 429:
            return limited
        refused = scope_rules.check(path, self.scopes)
        if refused is not None:
            return refused
        pairs = parse_qsl(query, keep_blank_values=True)
        if method == "POST" and body:
            pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        with self.workspace.lock:
            resp = self.api.handle(Request(method, path, pairs, origin))
        if resp.content_type == "application/json":
            resp.body = rebase(resp.body, f"{origin}/2.0")
        if rule is not None and resp.status == 200 and resp.content_type == "application/json":
            resp = self._alter(rule, resp, origin, path, query)
        if limited is not None:
            resp.headers = {**(resp.headers or {}), **limited.headers}
        return resp

    def _scaled_limit(self, authorization: Optional[str]) -> Optional[Response]:
        """For a Bearer request under ``rate_limit``: a 429 when the window is spent, else an empty 200 carrying
        the ``X-RateLimit-*`` headers to add to the answer; None otherwise."""
        if self.rate_limit is None or not (authorization or "").lower().startswith("bearer "):
            return None
        with self._log_lock:
            now = time.monotonic()
            self._bearer_times = [t for t in self._bearer_times if t > now - self.rate_window_s]
            spent = len(self._bearer_times) >= self.rate_limit
            if not spent:
                self._bearer_times.append(now)
            remaining = self.rate_limit - len(self._bearer_times)
            reset = self.rate_window_s - (now - self._bearer_times[0]) if self._bearer_times else self.rate_window_s
            headers = {"X-RateLimit-Limit": str(self.rate_limit), "X-RateLimit-Resource": "api",
                       "X-RateLimit-NearLimit": str(remaining < 0.2 * self.rate_limit).lower(),
                       "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": str(max(1, round(reset)))}
            if spent:
                self.rate_limited += 1
                return Response(429, b"Rate limit for this resource has been exceeded", "text/plain", headers)
        return Response(200, b"", "text/plain", headers)

    def repository_keys(self, path: str) -> Tuple[str, ...]:
        """The identifiers (``repository_key`` of slug and uuid) of the repository a path concerns, if any.

        A repository the workspace does not know (deleted) keeps the identifier the path names.
        """
        parts = [unquote(p) for p in path.split("/") if p]
        if len(parts) < 4 or parts[:2] != ["2.0", "repositories"]:
            return ()
        with self.workspace.lock:
            repo = self.workspace.repository(parts[3])
        if repo is None:
            return (repository_key(parts[3]),)
        return repository_key(repo.slug), repository_key(repo.uuid)

    def _alter(self, rule: FaultRule, resp: Response, origin: str, path: str, query: str) -> Response:
        if rule.kind == "malformed_json":
            resp.body = resp.body[: max(1, len(resp.body) // 2)]
            return resp
        doc = json.loads(resp.body)
        if isinstance(doc, dict):
            if rule.kind == "repeat_next":
                doc["next"] = f"{origin}{path}" + (f"?{query}" if query else "")
            else:
                target = urlsplit(doc.get("next") or f"{origin}{path}?{query}")
                doc["next"] = f"https://evil.example.com{target.path}" + (f"?{target.query}" if target.query else "")
            resp.body = json.dumps(doc).encode()
        return resp

    def answer_control(self, method: str, path: str, body: bytes) -> Response:
        """The unauthenticated ``/_sandbox/...`` endpoints."""
        parts = [p for p in path.split("/") if p][1:]
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return error_response(400, "Control payload is not valid JSON")
        if parts == ["mutate"] and method == "POST":
            op, args = payload.get("op"), payload.get("args") or {}
            if op not in MUTATIONS:
                return error_response(400, f"Unknown op {op!r}; expected one of {', '.join(MUTATIONS)}")
            try:
                return json_response(200, {"op": op, "result": getattr(self.workspace, op)(**args)})
            except KeyError as exc:
                return error_response(404, str(exc.args[0] if exc.args else exc))
            except (TypeError, ValueError) as exc:
                return error_response(400, str(exc))
        if parts == ["faults"]:
            if method == "POST":
                try:
                    return json_response(201, self.faults.add(**payload).to_dict())
                except (TypeError, ValueError) as exc:
                    return error_response(400, str(exc))
            if method == "DELETE":
                self.faults.clear()
            return json_response(200, [r.to_dict() for r in self.faults.rules])
        if parts == ["requests"]:
            if method == "DELETE":
                self.reset_requests()
            log = [{"method": m, "path": p, "query": q} for m, p, q in self.requests]
            return json_response(200, {"requests": log, "counts": self.request_counts()})
        if len(parts) == 2 and parts[0] == "records" and method == "GET":
            if parts[1] not in STREAMS + PIPELINE_STREAMS + REVIEW_STREAMS + ("members",):
                return error_response(404, f"Unknown stream {parts[1]!r}")
            return json_response(200, self.workspace.records(parts[1]))
        if parts == ["scopes"] and method in ("GET", "PUT", "POST"):
            if method != "GET":
                wanted = payload.get("scopes") if isinstance(payload, dict) else None
                if wanted is not None and (not isinstance(wanted, list) or not all(isinstance(x, str) for x in wanted)):
                    return error_response(400, "scopes must be a list of scope names or null")
                self.scopes = wanted
            return json_response(200, {"scopes": self.scopes, "granted": scope_rules.granted(self.scopes)})
        if parts == ["switches"] and method in ("GET", "PUT", "POST"):
            if method != "GET":
                if not isinstance(payload, dict) or any(k not in SWITCHES or not isinstance(v, bool)
                                                        for k, v in payload.items()):
                    return error_response(400, f"switches: an object of booleans among {', '.join(SWITCHES)}")
                with self.workspace.lock:
                    for name, value in payload.items():
                        setattr(self.workspace, name, value)
            return json_response(200, {name: getattr(self.workspace, name) for name in SWITCHES})
        if parts == ["info"]:
            ws = self.workspace
            return json_response(200, {"api_url": self.api_url, "email": self.email, "api_token": self.api_token,
                                       "scopes": self.scopes, "workspace": ws.slug, "now": ws.now.isoformat(),
                                       "version": ws.version})
        if not parts and method == "GET":
            return json_response(200, CONTROL_HELP)
        return error_response(404, "Unknown sandbox control endpoint; GET /_sandbox/ lists them")


def _fault_response(rule: FaultRule, path: str, scopes: Optional[List[str]]) -> Optional[Response]:
    kind = rule.kind
    if kind == "drop_connection":
        return None
    if kind == "429":
        headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
        return Response(429, b"Rate limit for this resource has been exceeded", "text/plain", headers)
    if kind == "500":
        return json_response(500, {"type": "error", "error": {"message": "Something went wrong",
                                                                 "id": f"{abs(hash(path)) % 16**32:032x}"}})
    if kind == "502_html":
        return Response(502, BAD_GATEWAY.encode(), "text/html")
    parts = [p for p in path.split("/") if p]
    if kind == "403":  # no access to this repository (unit_tests/resource/bitbucket-api/error_403__*.json)
        return error_response(403, "Forbidden")
    if kind == "403_scope":
        scope = scope_rules.required_scope(path) or scope_rules.REPOSITORY
        return scope_rules.missing_scope_response(scope, [s for s in scope_rules.granted(scopes) if s != scope])
    if len(parts) >= 4 and parts[1] == "repositories":
        return error_response(404, f"Repository {parts[2]}/{parts[3]} not found")
    return error_response(404, "Resource not found")


class _Handler(BaseHTTPRequestHandler):
    """Request handler; ``sandbox`` is set on a per-server subclass."""

    sandbox: SandboxServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    server_version = "BitbucketSandbox/1.0"

    def date_time_string(self, timestamp=None) -> str:
        """The ``Date`` header: the real time, or with ``clock_dates`` the workspace's clock (the one its
        ``updated_on`` values come from: a server whose clock is behind or ahead of the client's)."""
        if self.sandbox.clock_dates and timestamp is None:
            return email.utils.format_datetime(to_datetime(self.sandbox.workspace.now_us), usegmt=True)
        return super().date_time_string(timestamp)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        split = urlsplit(self.path)
        try:
            if split.path.startswith("/_sandbox/"):
                resp = self.sandbox.answer_control(method, split.path, body)
            elif split.path == TOKEN_PATH and method == "POST" and self.sandbox.oauth is not None:
                status, answer = self.sandbox.oauth.answer(self.headers.get("Authorization"), body)
                resp = Response(status, answer, "application/json")
            else:
                resp = self.sandbox.answer_api(method, split.path, split.query, body, self.headers)
        except Exception:  # noqa: BLE001 - a bug must not kill the server
            traceback.print_exc(file=sys.stderr)
            resp = error_response(500, "Sandbox internal error")
        if resp is None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(resp.status)
        charset = "" if resp.content_type == "application/json" else "; charset=utf-8"
        self.send_header("Content-Type", resp.content_type + charset)
        self.send_header("Content-Length", str(len(resp.body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(resp.body)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from http.server
        if self.sandbox.verbose:
            sys.stderr.write("sandbox: " + format % args + "\n")
