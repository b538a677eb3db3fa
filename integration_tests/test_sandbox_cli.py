"""``python -m integration_tests.sandbox``: the config file it writes works as is, and ``--scopes`` applies."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
import requests

from integration_tests import connector_cli as cli
from integration_tests.sandbox.__main__ import DEFAULT_CONFIG_OUT, parse_args

SIZE = ["--repositories", "3", "--pull-requests", "12", "--commits", "30", "--deployments", "4", "--members", "3"]


@contextlib.contextmanager
def serve(args: List[str], cwd: Path, until: str = "}") -> Iterator[Tuple[subprocess.Popen, str]]:
    """Start the sandbox CLI on a free port in ``cwd``; yield it and what it printed up to a line starting ``until``."""
    env = {**os.environ, "PYTHONPATH": str(cli.PROJECT_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "integration_tests.sandbox", "--port", "0", *SIZE, *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: List[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith(until):
                break
        yield proc, "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def default_run(tmp_path):
    with serve([], tmp_path) as run:
        yield run


def test_the_default_config_file_is_written_printed_and_reads_the_sandbox(default_run, tmp_path):
    _, printed = default_run
    path = tmp_path / DEFAULT_CONFIG_OUT
    assert path.is_file(), printed
    config = json.loads(path.read_text())
    assert set(config) == {"workspace", "email", "api_token", "api_url"}
    assert config["workspace"] == "acme-sandbox" and config["email"] == "dev@example.com"
    assert config["api_token"] == "sandbox-token" and config["api_url"].startswith("http://127.0.0.1:")
    assert f"connector config written to {DEFAULT_CONFIG_OUT}:\n{path.read_text()}" in printed
    assert "token scopes: all (" in printed

    check = cli.run("check", config)
    statuses = [m["connectionStatus"]["status"] for m in check.other if m.get("type") == "CONNECTION_STATUS"]
    assert statuses == ["SUCCEEDED"], check.stdout + check.stderr
    read = cli.run("read", config, cli.catalog(streams=("repositories", "pull_requests")))
    assert read.returncode == 0 and len(read.records["repositories"]) == 3
    assert len(read.records["pull_requests"]) == 12


def test_config_out_path_and_scopes_options(tmp_path):
    target = tmp_path / "elsewhere" / "sandbox.json"
    args = ["--config-out", str(target), "--scopes", "read:repository:bitbucket, read:pullrequest:bitbucket",
            "--api-token", "other-token"]
    with serve(args, tmp_path) as (_, printed):
        config = json.loads(target.read_text())
        assert config["api_token"] == "other-token" and not (tmp_path / DEFAULT_CONFIG_OUT).exists()
        assert "token scopes: read:repository:bitbucket, read:pullrequest:bitbucket" in printed
        auth = (config["email"], config["api_token"])
        assert requests.get(f"{config['api_url']}/repositories/{config['workspace']}", auth=auth).status_code == 200
        members = requests.get(f"{config['api_url']}/workspaces/{config['workspace']}/members", auth=auth)
        assert members.status_code == 403
        assert members.json()["error"]["detail"] == {
            "granted": ["read:repository:bitbucket", "read:pullrequest:bitbucket"], "required": ["read:workspace:bitbucket"]}


def test_an_empty_config_out_writes_no_file(tmp_path):
    assert parse_args([]).config_out == DEFAULT_CONFIG_OUT and parse_args([]).scopes is None
    with serve(["--config-out", ""], tmp_path, until="token scopes") as (_, printed):
        assert "Bitbucket sandbox serving workspace 'acme-sandbox'" in printed and "config written" not in printed
        assert not (tmp_path / "secrets").exists()


def test_a_port_in_use_is_one_line_with_the_fix_not_a_traceback(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(cli.PROJECT_ROOT)}
        done = subprocess.run([sys.executable, "-m", "integration_tests.sandbox", "--port", str(port), *SIZE],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--port 0" in done.stderr
