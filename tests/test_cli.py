"""The command line speaks CLI: complete help, its own options, one line for every ordinary mistake."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys

import polars as pl
import pytest
from readme_fake import fake

from distilfn import cli
from distilfn.testing.fakeserver import FakeServer

PLAN = """
from distilfn import task
answer = task(name="answer", inputs=["q"], outputs=["a"],
              render=lambda r: [{"role": "user", "content": r["q"]}], parse=lambda t: {"a": t})
plan = answer
"""


class RecordingServer(FakeServer):
    """The fake server, keeping every chat-completion request body it answers."""

    def __init__(self, **kw):
        super().__init__(reply=lambda messages, i: fake([messages])[0], **kw)
        self.bodies = []

    def _choices(self, job):
        self.bodies.append(job.request)
        return super()._choices(job)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "plan.py").write_text(PLAN)
    pl.DataFrame({"q": ["a", "b"]}).write_ndjson(tmp_path / "in.jsonl")
    return tmp_path


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == "distilfn 0.1.0"


def test_every_command_and_option_has_help():
    parser = cli.build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == {"run", "preview", "demo", "cache", "batches"}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"distilfn {name} {action.option_strings or action.dest} has no help"
        sub.format_help()  # renders
    options = {o for a in commands.choices["run"]._actions for o in a.option_strings}
    assert {"--max-tokens", "--temperature", "--rpm", "--tpm", "--model-name", "--allow-failures", "-v", "--verbose",
            "--debug", "--max-cost", "--price", "--log-file", "--batch", "--no-wait"} <= options
    result = subprocess.run([sys.executable, "-m", "distilfn.cli", "run", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--max-cost USD" in result.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "{d}/nope.py", "--input", "{d}/in.jsonl", "--output", "{d}/out.parquet"], "no plan file at"),
        (["run", "{d}/plan.py", "--input", "{d}/missing.jsonl", "--output", "{d}/out.parquet"], "no input file at"),
        (["run", "{d}/plan.py", "--input", "{d}/in.jsonl", "--output", "{d}/out.csv"], "name it .parquet or .jsonl"),
        (["run", "{d}/plan.py", "--input", "{d}/in.txt", "--output", "{d}/out.parquet"], "give a .jsonl, .parquet or .csv file"),
        (["run", "{d}/plan.py", "--input", "{d}/in.jsonl", "--output", "{d}/out.parquet", "--model", "{closed}"], "cannot reach a server at"),
        (["run", "{d}/plan.py", "--input", "{d}/in.jsonl", "--output", "{d}/out.parquet", "--model", "gpt-x"], "is a model name, but no server is set"),
        (["run", "{d}/plan.py", "--input", "{d}/in.jsonl", "--output", "{d}/out.parquet", "--max-tokens", "lots"], "--max-tokens: expected a whole number"),
        (["run", "{d}/plan.py", "--input", "{d}/in.jsonl", "--output", "{d}/out.parquet", "--price", "m=1"], "--price 'm=1': expected NAME=IN,OUT"),
        (["run", "{d}/plan.py", "--input", "{d}/in.jsonl", "--output", "{d}/out.parquet", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["preview", "{d}/uf.py", "--input", "{d}/in.txt"], "give a .jsonl, .parquet or .csv file"),
    ],
)
def test_an_ordinary_mistake_gets_one_line_and_a_non_zero_exit(files, capsys, monkeypatch, argv, expected):
    monkeypatch.delenv("DISTILFN_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    (files / "in.txt").write_text("q\n")
    (files / "uf.py").write_text("from distilfn.tasks import ultrafeedback\nplan = ultrafeedback()\n")
    argv = [a.format(d=files, closed=closed_port_url()) for a in argv]
    try:
        code, _, err = run_main(capsys, *argv)
    except SystemExit as exit:  # argparse
        code, err = exit.code, capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert expected in lines[0] and "Traceback" not in err
    assert "DISTILFN_MODEL_NAME" not in err and "format=" not in err  # advice in CLI terms


def test_debug_shows_the_traceback(files):
    args = [sys.executable, "-m", "distilfn.cli", "run", str(files / "plan.py"), "--input", str(files / "in.jsonl"),
            "--output", str(files / "out.parquet"), "--model", closed_port_url(), "--debug"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr and "CliError: cannot reach a server" in result.stderr


def test_generation_options_reach_the_server_and_the_source_of_the_model_is_told(files, capsys, monkeypatch):
    monkeypatch.delenv("DISTILFN_MODEL", raising=False)
    with RecordingServer() as server:
        code, out, err = run_main(
            capsys, "run", str(files / "plan.py"), "--input", str(files / "in.jsonl"), "--output", str(files / "out.parquet"),
            "--model", server.url, "--max-tokens", "7", "--temperature", "0.3", "--seed", "5", "--rpm", "6000", "--no-cache", "-q",
        )
        assert code == 0, err
        assert [(b["max_tokens"], b["temperature"], b["seed"]) for b in server.bodies] == [(7, 0.3, 5)] * 2
        assert "using model 'fake-model' at" in err and "(from --model)" in err and "DISTILFN_MODEL" not in err
        monkeypatch.setenv("DISTILFN_MODEL", server.url)
        code, _, err = run_main(capsys, "run", str(files / "plan.py"), "--input", str(files / "in.jsonl"),
                                "--output", str(files / "out2.parquet"), "--model-name", "served", "--no-cache", "-q")
        assert code == 0, err
        assert "using model 'served' at" in err and "(from DISTILFN_MODEL)" in err


def test_rpm_and_tpm_limit_the_model():
    with FakeServer() as server:
        model = cli.model_from_option(server.url, "fake", rpm=60, tpm=6000)
    assert model._requests is not None and model._tokens is not None
    with FakeServer() as server:
        assert cli.model_from_option(server.url, "fake")._requests is None


def test_verbose_writes_a_debug_log(files, capsys):
    log = files / "debug.log"
    with RecordingServer() as server:
        code, _, err = run_main(capsys, "run", str(files / "plan.py"), "--input", str(files / "in.jsonl"), "--output",
                                str(files / "out.parquet"), "--model", server.url, "--no-cache", "-q", "-v", "--log-file", str(log))
    assert code == 0, err
    assert "DEBUG distilfn.cli: run" in log.read_text()


def test_max_cost_stops_the_cli_cleanly(files, capsys):
    pl.DataFrame({"q": [f"question {i}" for i in range(40)]}).write_ndjson(files / "in.jsonl")
    with RecordingServer() as server:
        code, _, err = run_main(capsys, "run", str(files / "plan.py"), "--input", str(files / "in.jsonl"), "--output",
                                str(files / "out.parquet"), "--model", server.url, "--no-cache", "-q", "--chunk-rows", "1",
                                "--max-concurrency", "1", "--price", "fake-model=1000,0", "--max-cost", "0.05")
        sent = len(server.bodies)
    assert code == 3
    assert err.strip().splitlines()[-1].startswith("distilfn: BudgetExceededError: stopping: the requests sent would cost")
    assert "raise --max-cost" in err
    assert 0 < sent < 40
    assert (files / "out.parquet.parts").is_dir()  # the finished rows are kept for the next run


def test_demo_runs_the_readme_plan_on_a_server(tmp_path, capsys):
    with RecordingServer() as server:
        code, out, err = run_main(capsys, "demo", "--model", server.url, "--output", str(tmp_path / "demo.parquet"), "--no-cache")
        bodies = server.bodies
    assert code == 0, err
    assert len(bodies) == 15  # 3 rows x (3 rewrites + 1 request for 4 answers + 1 judge call)
    assert sorted({b["max_tokens"] for b in bodies}) == sorted(set(cli.DEMO_MAX_TOKENS.values()))
    from distilfn.tasks.ultrafeedback import answer_token_budget

    assert cli.DEMO_MAX_TOKENS["judge"] == answer_token_budget(False, 4)  # room for the whole JSON answer
    assert "wrote 3 rows" in out and "12 ratings parsed" in out
    assert "15 requests" in err and "distilfn run: 3 rows in, 3 rows out, 0 failed" in err
    with RecordingServer() as server:
        code, _, err = run_main(capsys, "demo", "--model", server.url, "--output", str(tmp_path / "demo.parquet"), "--no-cache",
                                "--rows", "1", "--max-tokens", "30", "-q")
        assert code == 0, err
        assert {b["max_tokens"] for b in server.bodies} == {30}  # --max-tokens sets every step of the demo


def test_a_key_in_the_model_url_is_refused_before_any_request(tmp_path):
    """Issue 11's rule on the CLI's own model lookup: `--model http://user:KEY@host/v1` is one
    line that hides the key, and no request is made (the lookup once went first)."""
    import subprocess
    import sys

    from distilfn.testing.fakeserver import FakeServer

    (tmp_path / "plan.py").write_text("from distilfn.tasks import text_generation\nplan = text_generation()\n")
    (tmp_path / "in.jsonl").write_text('{"instruction": "hi"}\n')
    with FakeServer() as server:
        url = server.url.replace("http://", "http://me:sk-in-the-url-77@")
        done = subprocess.run(
            [sys.executable, "-m", "distilfn.cli", "run", str(tmp_path / "plan.py"), "--input", str(tmp_path / "in.jsonl"),
             "--output", str(tmp_path / "out.parquet"), "--model", url, "-q"],
            capture_output=True, text=True, timeout=120,
        )
        seen = server.stats()["requests"]
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "must not hold credentials" in done.stderr and "sk-in-the-url-77" not in done.stderr + done.stdout
    assert seen == 0


def test_preview_without_input_shows_the_judges_prompt(files, capsys):
    """`distilfn preview uf.py` with `plan = ultrafeedback()` and no --input once ended in
    "Give rows to render with --input FILE": the stand-in row missed the columns read
    inside the plan's ensure()."""
    (files / "uf.py").write_text("from distilfn.tasks import ultrafeedback\nplan = ultrafeedback()\n")
    code, out, err = run_main(capsys, "preview", str(files / "uf.py"))
    assert code == 0, err
    assert "--- ultrafeedback_overall_rating [judge] ---" in out and "<evolved_instruction>" in out


class UnlistedServer(RecordingServer):
    """A server that answers chat completions but not ``GET /v1/models`` (404), as some
    proxies and gateways do."""

    def _answer(self, request):
        if request.path == "/v1/models":
            return 404, b'{"error": {"message": "not found"}}', []
        return super()._answer(request)


def test_a_server_that_lists_no_models_needs_and_takes_a_model_name(files, capsys, monkeypatch):
    """The CLI's lookup and the library's are one function (models.default.remote_model): a
    server that does not list its models is one line asking for --model-name, and with the
    name the run goes ahead against it."""
    monkeypatch.delenv("DISTILFN_MODEL", raising=False)
    args = ["run", str(files / "plan.py"), "--input", str(files / "in.jsonl"), "--output", str(files / "out.parquet"),
            "--no-cache", "-q"]
    with UnlistedServer() as server:
        code, _, err = run_main(capsys, *args, "--model", server.url)
        assert code != 0 and server.bodies == []
        assert err.strip().splitlines() == [f"distilfn: {server.url} (from --model) lists no model it serves; "
                                            "give --model-name NAME"]
        code, _, err = run_main(capsys, *args, "--model", server.url, "--model-name", "mine")
        assert code == 0, err
        assert [b["model"] for b in server.bodies] == ["mine", "mine"]
