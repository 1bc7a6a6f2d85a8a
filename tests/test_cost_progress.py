"""Tokens and money per step and model, the max_cost budget, and what a person sees while a run goes."""

from __future__ import annotations

import asyncio
import io
import sys
import types

import polars as pl
import pytest
from readme_fake import fake
from rich.console import Console

from distilfn import read_output
from distilfn.errors import BudgetExceededError
from distilfn.models import FunctionModel, Generation
from distilfn.models._base import EndpointStats
from distilfn.run import RunStats
from distilfn.run.cost import Prices
from distilfn.run.progress import Progress, headline, progress_wanted
from distilfn.tasks import evol_instruct, ultrafeedback

DF = pl.DataFrame({"instruction": [f"Question {i}?" for i in range(8)]})
PLAN = evol_instruct(n=1) >> ultrafeedback()


class Metered:
    """A model that reports 100 input and 10 output tokens per answer, and counts its calls."""

    def __init__(self, name: str):
        self.calls = 0
        self.model = FunctionModel(self, name=name, identity=f"{name}-v1")

    def __call__(self, chats):
        self.calls += len(chats)
        return [Generation(texts=[t], input_tokens=100, output_tokens=10) for t in fake(chats)]


def test_tokens_and_cost_per_step_and_model_are_in_the_stats_and_on_the_result(tmp_path):
    writer, judge = Metered("writer"), Metered("judge")
    result = PLAN.run_to(DF.head(2), tmp_path / "out.parquet", model={"generator": writer.model, "judge": judge.model},
                         cache=False, prices={"writer": (1.0, 10.0)})
    usage = {key: (u.requests, u.input_tokens, u.output_tokens, u.cost) for key, u in result.stats.usage.items()}
    assert usage[("evol_instruct", "writer")] == (2, 200, 20, pytest.approx(2 * (100 * 1 + 10 * 10) / 1e6))
    assert usage[("text_generation", "writer")][:3] == (8, 800, 80)
    assert usage[("ultrafeedback_overall_rating", "judge")] == (2, 200, 20, None)  # no price for the judge
    assert result.input_tokens == 1200 and result.output_tokens == 120
    assert result.cost == pytest.approx(10 * 200 / 1e6)
    assert result.stats.unpriced == ["judge"]
    assert "no price for judge" in result.stats.summary()


def test_the_price_library_prices_a_providers_api_but_never_a_self_hosted_server():
    prices = Prices()
    assert prices.cost("gpt-4o-mini", "https://api.openai.com/v1", 1_000_000, 0) > 0
    assert prices.cost("gpt-4o-mini", "http://127.0.0.1:8000/v1", 1_000_000, 0) is None
    assert Prices({"gpt-4o-mini": (0, 0)}).cost("gpt-4o-mini", "https://api.openai.com/v1", 10**6, 10**6) == 0.0
    with pytest.raises(ValueError, match=r"prices\['m'\] must be"):
        Prices({"m": (1,)})


def test_max_cost_stops_before_the_projected_cost_passes_it_and_a_rerun_goes_on(tmp_path):
    model = Metered("paid")
    out = tmp_path / "out.parquet"
    options = {"cache": tmp_path / "cache", "prices": {"paid": (100.0, 0.0)}, "max_concurrency": 1, "chunk_rows": 1}
    # every request costs 100 tokens x $100 / 1M = $0.01
    with pytest.raises(BudgetExceededError, match=r"max_cost=\$0.05.*--max-cost"):
        PLAN.run_to(DF, out, model=model.model, max_cost=0.05, **options)
    assert model.calls == 5
    result = PLAN.run_to(DF, out, model=model.model, max_cost=1.0, **options)
    assert result.failed == 0 and result.rows_out == DF.height
    assert model.calls == 6 * DF.height  # a row is 6 requests; the 5 answered ones were not sent again
    assert read_output(out).height == DF.height


def test_max_cost_without_a_price_is_refused_before_any_request():
    model = Metered("unknown-model")
    with pytest.raises(ValueError, match=r"max_cost needs a price for the model 'unknown-model'.*prices=\{'unknown-model'"):
        PLAN.run(DF, model=model.model, cache=False, max_cost=1.0)
    assert model.calls == 0


def test_the_summary_prints_in_python_unless_quiet(capsys):
    PLAN.run(DF.head(1), model=fake, cache=False)
    err = capsys.readouterr().err
    assert "distilfn run: 1 rows in, 1 rows out, 0 failed" in err
    assert "ultrafeedback_overall_rating" in err
    PLAN.run(DF.head(1), model=fake, cache=False, quiet=True)
    assert capsys.readouterr().err == ""


def test_progress_shows_on_a_terminal_and_in_jupyter_but_not_in_ci(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    assert progress_wanted(None, Tty())
    assert not progress_wanted(None, io.StringIO())
    assert not progress_wanted(False, Tty())

    class ZMQInteractiveShell:
        pass

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = ZMQInteractiveShell
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert progress_wanted(None, io.StringIO())
    monkeypatch.setenv("CI", "1")
    assert not progress_wanted(None, Tty())


def test_the_live_view_shows_finished_rows_rates_in_flight_model_counters_and_cost():
    stats = RunStats()
    step = stats.step("judge")
    step.rows, step.ok, step.requests = 3, 2, 2
    stats.rows_done, stats.in_flight = 1, 1
    stats.record(step, "m", 100, 10, 0.5)
    endpoint = EndpointStats(endpoint="http://127.0.0.1:1/v1", retries=4, timeouts=1, throttled=2)
    stats.models = {"judge": types.SimpleNamespace(endpoint_stats=lambda: [endpoint])}
    line = headline(stats, 4)
    for part in ("rows 1/4", "rows/s", "req/s", "ETA ", "in flight 1", "retries 4", "timeouts 1", "throttles 2", "cost $0.5000"):
        assert part in line, line
    assert "retries" not in headline(RunStats(), 4)  # shown only when a model keeps the counter

    screen = io.StringIO()

    async def show():
        async with Progress(stats, 4, enabled=True, summary=True, console=Console(file=screen, force_terminal=True, width=200)):
            await asyncio.sleep(0)

    asyncio.run(show())
    text = screen.getvalue()
    assert "in flight 1" in text and "judge" in text
    assert "distilfn run:" in text  # the summary after the live view


def test_off_a_terminal_progress_lines_say_what_the_run_is_doing(monkeypatch):
    import distilfn.run.progress as progress

    monkeypatch.setattr(progress, "LINE_EVERY", 0)
    stats = RunStats()
    stats.rows_done = 2
    screen = io.StringIO()

    async def show():
        async with Progress(stats, 5, enabled=False, summary=False, lines=True, console=Console(file=screen, width=300)):
            for _ in range(5):
                await asyncio.sleep(0)

    asyncio.run(show())
    assert screen.getvalue().startswith("distilfn: rows 2/5")
    with pytest.raises(ValueError, match="progress must be"):
        PLAN.run(DF, model=fake, progress="sometimes")


def test_on_a_terminal_plan_run_shows_live_progress_while_a_request_waits(tmp_path):
    """A real pseudo-terminal: the live view appears while the only request is still waiting."""
    import os
    import pty
    import select
    import subprocess

    release = tmp_path / "release"
    script = tmp_path / "slow.py"
    script.write_text(f"""
import pathlib, time
import polars as pl
from distilfn import task
def waits(chats):
    while not pathlib.Path({str(release)!r}).exists():
        time.sleep(0.05)
    return ["done"] * len(chats)
t = task(name="slow_step", inputs=["q"], outputs=["a"], render=lambda r: [{{"role": "user", "content": r["q"]}}],
         parse=lambda text: {{"a": text}})
t.run(pl.DataFrame({{"q": ["x"]}}), model=waits, cache=False)
print("RUN FINISHED")
""")
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    child = subprocess.Popen([sys.executable, str(script)], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    seen = b""
    try:
        while b"in flight 1" not in seen:
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, f"no live progress on the terminal; got {seen!r}"
            seen += os.read(master, 65536)
        assert b"RUN FINISHED" not in seen and b"slow_step" in seen
        release.touch()
        while b"RUN FINISHED" not in seen:
            ready, _, _ = select.select([master], [], [], 60)
            assert ready
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
        assert child.wait(timeout=60) == 0
        assert b"distilfn run: 1 rows in, 1 rows out, 0 failed" in seen
    finally:
        child.kill()
        child.wait()
        os.close(master)


def test_the_live_views_throttles_and_retries_are_what_the_server_sent():
    """The live view's model counters are the HTTP backend's endpoint counts: a server that
    answers 429 to some requests shows as throttles and retries."""
    from distilfn.models import openai_compatible
    from distilfn.testing.fakeserver import FakeServer

    plan = evol_instruct(n=1)
    rows = pl.DataFrame({"instruction": [f"topic {i}" for i in range(30)]})
    with FakeServer(reply=lambda messages, i: fake([messages])[0]) as server:
        server.configure(error_rate=0.4, retry_after=0.0, seed=3)
        stats = RunStats()
        plan.run(rows, model=openai_compatible(server.url, model="m", backoff_base=0.01), stats=stats, cache=False, quiet=True)
        sent = server.stats()
    assert stats.model_counter("throttles") == sent["statuses"]["429"] > 0
    assert stats.model_counter("retries") == sent["completions"] - 30  # every request beyond one per row
    assert f"throttles {sent['statuses']['429']}" in headline(stats, 30)
