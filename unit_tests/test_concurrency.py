"""SlicePrefetcher and RateLimitGate: order, overlap, bounded buffers, errors, shared waits."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests
import responses
from airbyte_cdk.models import SyncMode

from source_bitbucket.concurrency import SlicePrefetcher
from source_bitbucket.rate_limit import RateLimitGate
from source_bitbucket import SourceBitbucket
from source_bitbucket.backoff import BitbucketBackoffStrategy
from unit_tests.conftest import API, WORKSPACE, page, repository, repository_url


class Recorder:
    """A fake slice reader: each slice yields its items slowly and records how many run at once."""

    def __init__(self, delay: float = 0.02, fail_on: str = "") -> None:
        self.delay, self.fail_on = delay, fail_on
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.produced = 0

    def __call__(self, stream_slice):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            for n in range(stream_slice["n"]):
                if stream_slice["name"] == self.fail_on and n == 2:
                    raise RuntimeError(f"boom in {self.fail_on}")
                time.sleep(self.delay)
                with self.lock:
                    self.produced += 1
                yield f"{stream_slice['name']}-{n}"
        finally:
            with self.lock:
                self.active -= 1


def slices(count: int, n: int = 5):
    return [{"name": f"s{i}", "n": n} for i in range(count)]


def test_records_come_out_per_slice_in_order_while_slices_are_read_concurrently():
    reader = Recorder()
    prefetcher = SlicePrefetcher(reader, slices(8), workers=4)
    started = time.monotonic()
    out = [list(prefetcher.items(i)) for i in range(8)]
    elapsed = time.monotonic() - started

    assert out == [[f"s{i}-{n}" for n in range(5)] for i in range(8)]
    assert reader.peak == 4
    assert elapsed < 8 * 5 * 0.02 * 0.6  # well under the sequential time


def test_buffers_are_bounded_so_workers_wait_for_the_consumer():
    reader = Recorder(delay=0)
    prefetcher = SlicePrefetcher(reader, slices(4, n=100), workers=2, window=2, buffer_items=10)
    time.sleep(0.3)
    assert reader.produced <= 2 * (10 + 1)  # two slices in the window, each a full buffer and one item in hand
    assert [len(list(prefetcher.items(i))) for i in range(4)] == [100] * 4


def test_an_error_in_a_slice_is_raised_when_that_slice_is_consumed():
    prefetcher = SlicePrefetcher(Recorder(fail_on="s1"), slices(3), workers=2)

    assert list(prefetcher.items(0)) == [f"s0-{n}" for n in range(5)]
    consumed = []
    with pytest.raises(RuntimeError, match="boom in s1"):
        for record in prefetcher.items(1):
            consumed.append(record)
    assert consumed == ["s1-0", "s1-1"]


def test_the_gate_holds_requests_until_a_shared_wait_is_over():
    gate = RateLimitGate()
    assert gate.wait() == 0
    gate.close_for(0.3)
    started = time.monotonic()
    gate.wait()
    assert time.monotonic() - started >= 0.25


def test_pacing_starts_near_the_limit_spreads_the_rest_of_the_window_and_stops_after_it(caplog):
    gate = RateLimitGate(logging.getLogger("test.pacing"))
    gate.observe({"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "900", "X-RateLimit-Reset": "1800"})
    assert gate.wait() == 0 and gate.wait() == 0  # far from the limit: no pacing
    with caplog.at_level(logging.INFO, logger="test.pacing"):
        gate.observe({"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "40", "X-RateLimit-Reset": "4"})  # 0.1 s each
        started = time.monotonic()
        for _ in range(4):
            gate.wait()
        assert 0.25 <= time.monotonic() - started < 1.0  # 3 gaps of 0.1 s after the first slot
        gate.observe({"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "990", "X-RateLimit-Reset": "3600"})
    assert "pacing at one request every 0.10 s (600 requests/minute)" in caplog.text and "no longer paced" in caplog.text
    gate.wait()
    started = time.monotonic()
    gate.wait()
    assert time.monotonic() - started < 0.2  # no slot to wait for: not paced any more


def test_near_limit_alone_paces_at_the_hourly_rate_and_no_headers_change_nothing():
    gate = RateLimitGate()
    gate.observe({})  # API tokens and OAuth consumers get no headers
    gate.observe({"X-RateLimit-Limit": "36000", "X-RateLimit-NearLimit": "false"})
    assert gate.wait() == 0 and gate.wait() == 0
    gate.observe({"X-RateLimit-Limit": "36000", "X-RateLimit-NearLimit": "true"})  # 3600 / 36000 = 0.1 s
    gate.wait()
    assert gate.wait() >= 0.05


def test_a_429_wait_closes_the_shared_gate_and_a_5xx_does_not():
    gate = RateLimitGate()
    strategy = BitbucketBackoffStrategy(logging.getLogger("test"), "commits", rate_limit_gate=gate)
    server_error = requests.Response()
    server_error.status_code = 503
    strategy.backoff_time(server_error, 1)
    assert gate.wait() == 0

    rate_limited = requests.Response()
    rate_limited.status_code = 429
    rate_limited.headers["Retry-After"] = "1"
    strategy.backoff_time(rate_limited, 1)
    started = time.monotonic()
    gate.wait()
    assert time.monotonic() - started >= 0.9


def test_a_slice_left_early_frees_its_worker_and_the_next_slices_still_come():
    prefetcher = SlicePrefetcher(Recorder(delay=0), slices(6, n=50), workers=1, buffer_items=4)
    first = prefetcher.items(0)
    assert next(first) == "s0-0"
    first.close()  # as the CDK does when a record limit is reached
    assert [len(list(prefetcher.items(i))) for i in range(1, 6)] == [50] * 5


@responses.activate
def test_stream_slices_starts_no_thread_the_first_read_records_does(config):
    repos = [repository(n) for n in (1, 2, 3)]
    responses.get(f"{API}/repositories/{WORKSPACE}", json=page(repos))
    for repo, delay in zip(repos, (0.5, 0.1, 0.1)):  # a started reader of the first is still alive when the test looks
        responses.add_callback(responses.GET, repository_url(repo, "pullrequests"),
                               callback=lambda request, d=delay: (time.sleep(d), (200, {}, '{"values": []}'))[1])
    pull_requests = next(s for s in SourceBitbucket().streams({**config, "num_workers": 3}) if s.name == "pull_requests")
    prefetchers = lambda: [t for t in threading.enumerate() if t.name.startswith("prefetch-")]  # noqa: E731
    before = len(prefetchers())

    slices = list(pull_requests.stream_slices(sync_mode=SyncMode.incremental, stream_state={}))

    assert len(slices) == 3 and len(prefetchers()) == before
    time.sleep(0.1)
    assert len(prefetchers()) == before  # nothing was read yet
    assert list(pull_requests.read_records(SyncMode.incremental, stream_slice=slices[0], stream_state={})) == []
    pull_request_calls = [c for c in responses.calls if c.request.url.split("?")[0].endswith("/pullrequests")]
    assert len(pull_request_calls) == 3  # the first read_records started the readers: the next two were read ahead
