"""Issue 11: the HTTP backend against servers that push back, hang, redirect or answer oddly.

Every test runs real servers on 127.0.0.1 (``FakeServer``) and asserts what the server
counted or what the client returned, never how long something took. Where the old backend
would hang, a generous ``asyncio.wait_for`` turns the hang into a failure.
"""

from __future__ import annotations

import asyncio
import io
import logging

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distilfn import task
from distilfn.errors import ModelError, RateLimitError, RequestRejectedError, TransportError
from distilfn.models import Generation
from distilfn.models._ratelimit import AdaptiveLimit
from distilfn.models.default import default_model, served_models
from distilfn.models.openai import OpenAICompatible, openai_compatible
from distilfn.run import RunStats
from distilfn.testing.fakeserver import FakeServer, ReplyError, content_key

SECRET = "sk-test-Zq8v3XkP0s9Lw2"
HEADER_SECRET = "hdr-7Yq2mW9pLx4Tn"


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def fast(url, **options) -> OpenAICompatible:
    options = {"model": "m", "backoff_base": 0.01, "backoff_max": 0.2, "api_key": "", **options}
    return openai_compatible(url, **options)


def run_each(model: OpenAICompatible, requests: list, *, bound: float = 60.0) -> list:
    """One agenerate per chat, all at once; ``bound`` seconds turn a hang into a failure."""

    async def go() -> list:
        try:
            answers = await asyncio.wait_for(asyncio.gather(*(model.agenerate([c]) for c in requests)), bound)
            return [a[0] for a in answers]
        finally:
            await model.aclose()

    return asyncio.run(go())


def settled(srv: FakeServer, key: str, value: int) -> dict:
    """The server's counters once ``key`` reached ``value`` (a closed connection reaches the
    server a moment after the client let go of it), or after 10 s."""
    import time

    give_up = time.monotonic() + 10
    while srv.stats()[key] < value and time.monotonic() < give_up:
        time.sleep(0.01)
    return srv.stats()


def echo_task():
    return task(name="echo", inputs=["q"], outputs=["a"], render=lambda r: [{"role": "user", "content": r["q"]}],
                parse=lambda text: {"a": text})


def questions(k: int) -> pl.DataFrame:
    return pl.DataFrame({"q": [f"q{i}" for i in range(k)]})


# -- 1. deadlines ---------------------------------------------------------------------------
def test_a_dripping_answer_is_cut_at_the_whole_answer_deadline():
    """One byte every 20 ms never trips a read timeout; the whole-answer deadline ends it."""
    with FakeServer(drip=0.02) as srv:
        [answer] = run_each(fast(srv.url, timeout=0.5, max_retries=1), [chat("x")])
        stats = settled(srv, "abandoned", 2)
    assert isinstance(answer, TransportError), answer
    assert "timeout=0.5s" in str(answer) and "gave up after 2 attempts" in str(answer)
    assert stats["paths"]["/v1/chat/completions"] == 2  # a timeout is retried like a 5xx
    assert stats["abandoned"] == 2  # the client hung up on both drips


def test_an_endless_answer_ends():
    with FakeServer(endless=True, drip=0.01) as srv:
        [answer] = run_each(fast(srv.url, timeout=0.5, max_retries=0), [chat("x")])
        assert settled(srv, "abandoned", 1)["abandoned"] == 1
    assert isinstance(answer, TransportError) and "timed out" in str(answer)


def test_an_answer_that_stops_midway_trips_the_stall_limit():
    with FakeServer(stall_after=150) as srv:  # the head and part of the body, then silence
        [answer] = run_each(fast(srv.url, stall_timeout=0.3, max_retries=2), [chat("x")])
        stats = settled(srv, "abandoned", 3)
    assert isinstance(answer, TransportError) and "stall_timeout=0.3s" in str(answer)
    assert stats["paths"]["/v1/chat/completions"] == 3 and stats["abandoned"] == 3


def test_an_answer_that_never_starts_trips_the_first_byte_limit():
    with FakeServer(latency=30.0) as srv:
        [answer] = run_each(fast(srv.url, first_byte_timeout=0.2, max_retries=0), [chat("x")])
    assert isinstance(answer, TransportError) and "first_byte_timeout=0.2s" in str(answer)


def test_deadline_options_are_checked():
    for option in ("timeout", "first_byte_timeout", "stall_timeout", "connect_timeout", "max_retry_after"):
        with pytest.raises(ValueError, match=option):
            openai_compatible("http://127.0.0.1:1/v1", model="m", **{option: 0})


# -- 2. credentials ------------------------------------------------------------------------
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_the_models_lookup_follows_no_redirect_to_another_host(status):
    with FakeServer(served_model="other-hosts-model") as other, \
            FakeServer(redirect_to=other.url, redirect_status=status) as front:
        with pytest.raises(ModelError) as caught:
            served_models(front.url, api_key=SECRET)
        with pytest.raises(ModelError):
            default_model(environ={"DISTILFN_MODEL": front.url, "DISTILFN_API_KEY": SECRET}, stream=io.StringIO())
        assert other.stats()["requests"] == 0  # neither the key nor the choice of model went there
        assert front.stats()["header_names"]["authorization"] == 2
    assert str(status) in str(caught.value) and SECRET not in str(caught.value)


def test_chat_completions_follow_no_redirect():
    with FakeServer() as other, FakeServer(redirect_to=other.url) as front:
        [answer] = run_each(fast(front.url, api_key=SECRET), [chat("x")])
        assert other.stats()["requests"] == 0
    assert isinstance(answer, RequestRejectedError) and answer.status == 307
    assert "redirects are not followed" in str(answer)


def test_credentials_in_the_url_are_refused_without_showing_them():
    url = f"http://user:{SECRET}@127.0.0.1:9/v1"
    with pytest.raises(ValueError, match="must not hold credentials") as caught:
        openai_compatible(url, model="m")
    assert SECRET not in str(caught.value)
    with pytest.raises(ValueError, match="must not hold credentials") as caught:
        default_model(environ={"DISTILFN_MODEL": url, "DISTILFN_MODEL_NAME": "m"}, stream=io.StringIO())
    assert SECRET not in str(caught.value)


def test_every_configured_header_value_is_scrubbed_from_errors_and_logs(caplog):
    caplog.set_level(logging.DEBUG)
    headers = {"X-Custom-Token": HEADER_SECRET}
    with FakeServer(status=500, echo_headers=True) as srv:
        model = fast(srv.url, headers=headers, api_key=SECRET, max_retries=1)
        [answer] = run_each(model, [chat("x")])
        assert srv.stats()["header_names"]["x-custom-token"] >= 2  # it was sent, and echoed back
    shown = [str(answer), repr(answer), repr(model), model.identity, caplog.text]
    assert "retrying" in caplog.text and "***" in str(answer)
    assert not any(HEADER_SECRET in text or SECRET in text for text in shown)


# -- 3. answers that are not text -----------------------------------------------------------
NOT_TEXT = {
    "q0": {"content": None, "refusal": "I cannot help with that.", "finish_reason": "stop"},
    "q1": {"content": None, "finish_reason": "tool_calls",
           "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    "q2": {"content": None, "finish_reason": "length"},
}


def not_text_reply(messages, index):
    return NOT_TEXT.get(messages[-1]["content"], "fine")


def test_null_content_refusals_and_tool_calls_are_errors_and_never_cached(tmp_path):
    cache = tmp_path / "cache.sqlite"
    with FakeServer(reply=not_text_reply) as srv:
        with pytest.warns(UserWarning, match="3 of 5 input rows failed"):
            out = echo_task().run(questions(5), model=fast(srv.url), cache=cache)
        with pytest.warns(UserWarning, match="3 of 5 input rows failed"):
            echo_task().run(questions(5), model=fast(srv.url), cache=cache)
        per_key = srv.stats()["requests_per_key"]
    errors = [m["error"] for m in out["meta.echo"].to_list()]
    assert out["a"].to_list()[3:] == ["fine", "fine"] and out["a"].to_list()[:3] == [None] * 3
    assert "finish_reason='stop'" in errors[0] and "I cannot help with that." in errors[0]
    assert "finish_reason='tool_calls'" in errors[1] and "1 tool call" in errors[1]
    assert "finish_reason='length'" in errors[2]
    assert [per_key[content_key(chat(f"q{i}"))] for i in range(5)] == [2, 2, 2, 1, 1]  # asked again


def test_a_malformed_200_is_retried_and_never_cached(tmp_path):
    with FakeServer(malformed_rate=0.3, seed=5) as srv:
        answers = run_each(fast(srv.url), [chat(f"q{i}") for i in range(60)])
        stats = srv.stats()
    assert all(isinstance(a, Generation) for a in answers)
    assert max(stats["requests_per_key"].values()) > 1  # some were broken, and asked again
    cache = tmp_path / "cache.sqlite"
    with FakeServer(malformed_rate=1.0) as srv:
        for _ in range(2):
            with pytest.warns(UserWarning, match="1 of 1 input rows failed"):
                out = echo_task().run(questions(1), model=fast(srv.url, max_retries=1), cache=cache)
        assert srv.stats()["paths"]["/v1/chat/completions"] == 4  # 2 attempts, twice: nothing cached
    assert "not a chat completion" in out["meta.echo"][0]["error"]


# -- 4. back-pressure -------------------------------------------------------------------------
def first_throttled(retry_after: float, headers: dict[str, str] | None = None):
    seen: list[str] = []

    def reply(messages, index):
        seen.append(messages[-1]["content"])
        if len(seen) == 1:
            raise ReplyError(429, "slow down", retry_after=retry_after, headers=headers)
        return "ok"

    return reply


def test_a_429_holds_back_only_the_request_that_got_it():
    """max_retries=0 and Retry-After 1000: the others are not paused (the old backend
    paused the whole endpoint for a minute)."""
    with FakeServer(reply=first_throttled(1000)) as srv:
        answers = run_each(fast(srv.url, max_concurrency=2, max_retries=0), [chat(f"q{i}") for i in range(10)],
                           bound=30)
        assert srv.stats()["statuses"] == {"200": 9, "429": 1}
    assert sum(isinstance(a, RateLimitError) for a in answers) == 1
    assert sum(isinstance(a, Generation) for a in answers) == 9


def test_a_pool_sends_a_throttled_request_to_another_endpoint_at_once(caplog):
    def always_throttled(messages, index):
        raise ReplyError(429, "quota", retry_after=99999)

    with FakeServer(reply=always_throttled) as a, FakeServer() as b:
        model = fast([a.url, b.url], max_retries=3)

        async def go():
            try:
                got = await asyncio.wait_for(asyncio.gather(*(model.agenerate([chat(f"q{i}")]) for i in range(40))), 60)
                return [g[0] for g in got], model.endpoint_stats()
            finally:
                await model.aclose()

        answers, stats = asyncio.run(go())
        assert b.stats()["ok"] == 40
        assert a.stats()["completions"] <= 40  # each request tried A at most once
    assert all(isinstance(x, Generation) for x in answers)
    by_url = {s.endpoint: s for s in stats}
    assert by_url[a.url].throttled == a.stats()["completions"] == by_url[a.url].retry_after_clamped
    assert "max_retry_after" in caplog.text  # the cap is said


def test_retry_after_zero_gets_a_minimum_and_is_reported(caplog):
    with FakeServer(reply=first_throttled(0)) as srv:
        model = fast(srv.url, max_concurrency=1)

        async def go():
            try:
                return await model.agenerate([chat("x")]), model.endpoint_stats()
            finally:
                await model.aclose()

        [answer], [stats] = asyncio.run(go())
    assert isinstance(answer, Generation)
    assert stats.throttled == 1 and stats.retry_after_clamped == 1 and stats.retries == 1
    assert "the minimum" in caplog.text


def test_quota_headers_hold_back_the_whole_endpoint():
    """A 429 whose headers say the request budget is gone: no other request reaches the
    server before the reset (arrivals before it were sent before the 429 was read)."""
    import time

    pause = 0.3
    arrivals: list[float] = []
    quota = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{pause}s"}
    throttle = first_throttled(pause, quota)

    def reply(messages, index):
        arrivals.append(time.monotonic())
        return throttle(messages, index)

    with FakeServer(reply=reply) as srv:
        answers = run_each(fast(srv.url, max_concurrency=2), [chat(f"q{i}") for i in range(10)])
    assert all(isinstance(a, Generation) for a in answers)
    early = [t for t in arrivals[1:] if t < arrivals[0] + pause]
    assert len(early) <= 2, early


def test_the_in_flight_limit_comes_down_on_429s_and_the_run_reports_it():
    """A server that takes 4 at once and answers 429 beyond: the limit is cut, most requests
    land without a 429, and the run's summary has the endpoint's counts."""
    with FakeServer(capacity=4, latency=0.05, retry_after=0.05) as srv:
        stats = RunStats()
        out = echo_task().run(questions(200), model=fast(srv.url, max_concurrency=32, max_retries=20),
                              max_concurrency=32, cache=False, stats=stats)
        server = srv.stats()
    assert out["a"].null_count() == 0
    [endpoint] = stats.endpoints
    assert endpoint.throttled == server["statuses"]["429"] and endpoint.limit_cuts >= 1
    assert endpoint.requests == server["completions"] == 200 + endpoint.retries
    assert server["statuses"]["429"] < 200  # fewer 429s than answers; at 32 in flight, 7 of 8 would be
    assert f"429s {endpoint.throttled}" in stats.summary()


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 64), st.lists(st.sampled_from(["take", "ok", "overload", "neutral"]), max_size=200))
def test_the_adaptive_limit_stays_between_1_and_its_ceiling(ceiling, events):
    limit = AdaptiveLimit(ceiling, ceiling=ceiling)
    in_flight = 0
    for event in events:
        if event == "take":
            if limit.room():
                limit.acquire()
                in_flight += 1
        elif in_flight:
            limit.release(ok=event == "ok", overload=event == "overload")
            in_flight -= 1
        assert 1 <= limit.value <= ceiling and limit.in_flight == in_flight <= ceiling


# -- 5. small servers -----------------------------------------------------------------------
def test_a_server_with_4_slots_gets_4_requests_at_a_time():
    """llama.cpp's /props says 4 slots: the run's 64 do not flood it (the old backend sent
    all 40 at once, which a real server answers with timeouts and "cancel task")."""
    with FakeServer(slots=4, latency=0.1) as srv:
        stats = RunStats()
        out = echo_task().run(questions(40), model=openai_compatible(srv.url, model="m", api_key=""),
                              max_concurrency=64, cache=False, stats=stats)
        server = srv.stats()
    assert out["a"].null_count() == 0
    assert server["max_in_flight"] == 4 and server["cancelled"] == 0 and server["abandoned"] == 0
    [endpoint] = stats.endpoints
    assert endpoint.slots == 4 and endpoint.max_in_flight == 4 and endpoint.timeouts == 0


def test_without_slots_the_limit_starts_moderate_and_grows_to_the_runs():
    with FakeServer(latency=0.3) as srv:
        out = echo_task().run(questions(600), model=openai_compatible(srv.url, model="m", api_key=""),
                              max_concurrency=128, cache=False)
        stats = srv.stats()
    assert out["a"].null_count() == 0
    # from 16, doubling each round trip while answers come back as fast as the first ones;
    # never past the run's 128 (128 itself unless the machine is loaded enough to slow them)
    assert 64 < stats["max_in_flight"] <= 128


def test_a_retry_sitting_out_retry_after_holds_no_run_slot():
    """The run takes 1 request at a time; q0 is told to come back in 5 s. The others are
    answered meanwhile: q0's retry reaches the server last, not second."""
    arrivals: list[str] = []
    throttle = first_throttled(5)

    def reply(messages, index):
        arrivals.append(messages[-1]["content"])
        return throttle(messages, index)

    with FakeServer(reply=reply) as srv:
        out = echo_task().run(questions(5), model=fast(srv.url), max_concurrency=1, cache=False)
        assert srv.stats()["statuses"] == {"200": 5, "429": 1}
    assert out["a"].null_count() == 0
    assert arrivals[0] == "q0" and arrivals[-1] == "q0" and sorted(arrivals[1:-1]) == ["q1", "q2", "q3", "q4"]


def test_a_server_hiding_its_slots_is_not_flooded():
    """2 slots, no /props: the limit starts at 16 and stops growing once answers come back
    slower than twice the fastest (the server is queueing), instead of sending all 60."""
    with FakeServer(slots=2, latency=0.2, props=False) as srv:
        stats = RunStats()
        out = echo_task().run(questions(60), model=openai_compatible(srv.url, model="m", api_key=""),
                              max_concurrency=64, cache=False, stats=stats)
        server = srv.stats()
    assert out["a"].null_count() == 0
    assert 16 <= server["max_in_flight"] <= 30 and server["abandoned"] == 0
    assert stats.endpoints[0].slots is None and stats.endpoints[0].timeouts == 0


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=8, max_size=40))
def test_no_configured_header_value_survives_in_an_echoed_error(value):
    with FakeServer(status=400, echo_headers=True) as srv:
        [answer] = run_each(fast(srv.url, headers={"X-Anything": value}, api_key=""), [chat("x")])
    assert isinstance(answer, RequestRejectedError) and "x-anything: ***" in str(answer)
    assert value not in str(answer) and value not in repr(answer)
