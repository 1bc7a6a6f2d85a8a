"""The ``distilfn`` command line: run, preview, demo, cache, batches.

Every ordinary mistake (a missing file, an unknown suffix, a server that does not answer,
a bad option) ends with one line on stderr and a non-zero exit; ``--debug`` shows the
traceback instead. Messages give advice in the command line's own terms (``--model-name``,
``--restart``, ``--max-cost``), not the Python API's.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "load_plan", "model_from_option", "build_parser", "demo_plan", "CliError"]

DEMO_INSTRUCTIONS = [
    "Explain photosynthesis to a ten-year-old.",
    "Write a haiku about rain.",
    "Give three tips for writing clear commit messages.",
]
DEMO_MAX_TOKENS = {"rewrite": 48, "answer": 64, "judge": 764}
"""The demo's answer lengths: an evolved instruction is a sentence or two, the answers are
short, and the judge gets what always fits its schema-constrained JSON for four texts
(``answer_token_budget(False, 4)``: at 256 and 384 tokens SmolLM2's rationales cut two of
three judge answers short, measured on 4 Dec)."""

_CLI_TERMS = (
    ("set DISTILFN_MODEL_NAME to skip this lookup", "give --model-name NAME to skip this lookup"),
    ("set DISTILFN_MODEL_NAME to name the model", "give --model-name NAME"),
    ("; set DISTILFN_MODEL_NAME", "; give --model-name NAME"),
    ("or pass format='parquet' or format='jsonl'", "or give --output a .parquet or .jsonl name"),
    ("restart=True", "--restart"),
    ("raise max_cost (--max-cost)", "raise --max-cost"),
    ("Fix the cause and re-run", "Fix the cause and run the same command again"),
)


class CliError(Exception):
    """A mistake the command line reports in one line (exit status ``code``)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def in_cli_terms(message: str) -> str:
    """A library message with its advice said the command line's way.

    >>> in_cli_terms("cannot list the models: ValueError; set DISTILFN_MODEL_NAME to skip this lookup")
    'cannot list the models: ValueError; give --model-name NAME to skip this lookup'
    """
    for library, cli in _CLI_TERMS:
        message = message.replace(library, cli)
    return message


def load_plan(path: str, name: str = "plan") -> Any:
    """The plan (or task) named ``name`` in the Python file at ``path``."""
    from distilfn.plan import as_plan

    file = Path(path)
    if not file.is_file():
        raise CliError(f"no plan file at {path!r}")
    namespace = runpy.run_path(str(file), run_name="__distilfn_plan__")
    if name not in namespace:
        defined = sorted(k for k, v in namespace.items() if as_plan(v) is not None)
        hint = f"; it defines {', '.join(defined)} (use --plan-name)" if defined else ""
        raise CliError(f"{path} defines no variable {name!r}{hint}")
    plan = as_plan(namespace[name])
    if plan is None:
        raise CliError(f"{name!r} in {path} is a {type(namespace[name]).__name__}, not a task or plan")
    return plan


def _notice(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _remote(url: str, name: str | None, source: str, *, rpm: float | None = None, tpm: float | None = None,
            api_key: str | None = None) -> Any:
    """An OpenAI-compatible model at ``url``; the server must answer ``GET /models`` first
    (it names the model when ``--model-name`` is not given, and proves the server is up)."""
    from distilfn.errors import AuthenticationError, ModelError, TransportError
    from distilfn.models.default import _redact, remote_model

    shown = _redact(url)
    try:
        return remote_model(url, name, source, api_key=api_key, check=True, requests_per_minute=rpm,
                            tokens_per_minute=tpm)
    except TransportError:
        raise CliError(
            f"cannot reach a server at {shown} (from {source}): is it running, and is the URL its /v1 root? "
            "Check --model, or use --model local for the embedded model"
        ) from None
    except AuthenticationError as exc:
        raise CliError(f"{exc}; set DISTILFN_API_KEY or OPENAI_API_KEY") from None
    except ModelError:
        raise CliError(f"{shown} (from {source}) lists no model it serves; give --model-name NAME") from None


def model_from_option(option: str | None, model_name: str | None = None, *, rpm: float | None = None,
                      tpm: float | None = None) -> Any:
    """``--model``: an http(s) URL of an OpenAI-compatible server, ``local``, or a model name
    served at ``OPENAI_BASE_URL``/``DISTILFN_MODEL``; None means the environment's model, else
    the embedded one. The notice names where the choice came from."""
    env = os.environ
    if option is None:
        choice = (env.get("DISTILFN_MODEL") or "").strip()
        if choice.lower().startswith(("http://", "https://")):
            return _remote(choice, model_name or env.get("DISTILFN_MODEL_NAME") or None, "DISTILFN_MODEL", rpm=rpm, tpm=tpm)
        base = (env.get("OPENAI_BASE_URL") or "").strip()
        if not choice and base:
            name = model_name or env.get("DISTILFN_MODEL_NAME") or env.get("OPENAI_MODEL") or None
            return _remote(base, name, "OPENAI_BASE_URL", rpm=rpm, tpm=tpm, api_key=env.get("OPENAI_API_KEY") or "")
        if choice and choice.lower() != "local":
            raise CliError(f"DISTILFN_MODEL must be 'local' or the http(s) URL of an OpenAI-compatible server; got {choice!r}")
        if model_name:
            raise CliError("--model-name names a model at a server: give the server too (--model http://host:8000/v1)")
        return None  # the embedded model (the run says so)
    if option == "local":
        if model_name:
            raise CliError("--model-name is for a server's model; the embedded model has one (drop --model-name)")
        from distilfn.models.default import default_model

        return default_model(environ={"DISTILFN_MODEL": "local"})
    if option.startswith(("http://", "https://")):
        return _remote(option, model_name, "--model", rpm=rpm, tpm=tpm)
    for source in ("DISTILFN_MODEL", "OPENAI_BASE_URL"):
        url = (env.get(source) or "").strip()
        if url.startswith(("http://", "https://")):
            return _remote(url, option, source, rpm=rpm, tpm=tpm)
    raise CliError(
        f"--model {option!r} is a model name, but no server is set: give a URL "
        "(--model http://host:8000/v1 --model-name NAME), --model local, or set OPENAI_BASE_URL"
    )


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if getattr(args, "max_tokens", None) is not None:
        params["max_tokens"] = args.max_tokens
    if getattr(args, "temperature", None) is not None:
        params["temperature"] = args.temperature
    if getattr(args, "seed", None) is not None:
        params["seed"] = args.seed
    return params


def _prices(args: argparse.Namespace) -> dict[str, tuple[float, float]] | None:
    table = {}
    for item in getattr(args, "price", None) or ():
        name, _, pair = item.rpartition("=")
        try:
            tokens_in, tokens_out = (float(v) for v in pair.split(","))
        except ValueError:
            raise CliError(f"--price {item!r}: expected NAME=IN,OUT (dollars per million input and output tokens)") from None
        if not name:
            raise CliError(f"--price {item!r}: expected NAME=IN,OUT (dollars per million input and output tokens)")
        table[name] = (tokens_in, tokens_out)
    return table or None


def _cache_option(args: argparse.Namespace) -> Any:
    return False if args.no_cache else (args.cache or None)


def _check_output(path: str) -> None:
    from distilfn.output.stream import output_format

    try:
        output_format(Path(path), None)
    except ValueError:
        raise CliError(f"cannot tell the output format of {path!r}: name it .parquet or .jsonl") from None


def _check_input(path: str) -> None:
    p = Path(path).expanduser()
    if not p.exists():
        raise CliError(f"no input file at {path!r}")
    if p.suffix.lower() not in (".parquet", ".jsonl", ".ndjson", ".csv", ".json") and not p.is_dir():
        raise CliError(f"cannot read the input file {path!r}: give a .jsonl, .parquet or .csv file")


def _print_summary(stats: Any) -> None:
    from distilfn.run.progress import stderr_console, summary_table

    stderr_console().print(summary_table(stats))


def cmd_run(args: argparse.Namespace) -> int:
    _check_input(args.input)
    if args.ray is None:
        _check_output(args.output)
    plan = load_plan(args.plan, args.plan_name)
    if args.batch or args.no_wait:
        return _run_batched(args, plan)
    model = model_from_option(args.model, args.model_name, rpm=args.rpm, tpm=args.tpm)
    if args.ray is not None:
        from distilfn.ray import run_file_to

        result = run_file_to(
            plan, args.input, args.output, model, address=args.ray or None, quiet=args.quiet, restart=args.restart,
            limit=args.limit, cache=_cache_option(args), max_concurrency=args.max_concurrency,
            actors=args.actors, warn_failures=False,
        )
        return _finish(args, result, None)
    return _run_to(args, plan, model)


def _run_to(args: argparse.Namespace, plan: Any, model: Any) -> int:
    from distilfn.run import RunStats

    stats = RunStats()
    logging.getLogger("distilfn.cli").debug("run %s: input %s, output %s, params %s", args.plan, args.input, args.output, _params(args))
    result = plan.run_to(
        args.input, args.output, model,
        limit=args.limit, cache=_cache_option(args), max_concurrency=args.max_concurrency,
        params=_params(args), prices=_prices(args), max_cost=args.max_cost,
        progress=False if args.quiet else "lines", summary=False, stats=stats, restart=args.restart,
        chunk_rows=args.chunk_rows, warn_failures=False,
    )
    return _finish(args, result, stats)


def _finish(args: argparse.Namespace, result: Any, stats: Any) -> int:
    """What every run prints at the end, and its exit status."""
    if result.already_complete:
        _notice(f"distilfn: {result.path} is already complete ({result.rows_out} rows); pass --restart to run it again")
    elif not args.quiet and stats is not None:
        _print_summary(stats)
    print(result.path)
    if result.failed:
        again = " ".join(["distilfn", *(_quote(a) for a in sys.argv[1:] if a != "--restart")]) if sys.argv[1:] else "the same command"
        _notice(
            f"distilfn: {result.failed} of {_counted(args, result)} failed (their errors are in the meta.<step> columns); "
            f"run the same command again to retry them: {again}"
        )
        return 0 if args.allow_failures else 1
    return 0


def _counted(args: argparse.Namespace, result: Any) -> str:
    """What ``result.failed`` counts: input rows locally, output rows on Ray (no input row ids travel)."""
    return f"{result.rows_out} output rows" if args.ray is not None else f"{result.rows_in} input rows"


def _run_batched(args: argparse.Namespace, plan: Any) -> int:
    """``run --batch`` / ``--no-wait``: through the Batch API at --model; 75 while batches are pending."""
    from distilfn.models.batch_api import BatchesPending, openai_batch
    from distilfn.models.default import key_variable, served_models

    url = args.model or os.environ.get("OPENAI_BASE_URL") or ""
    if not url.startswith(("http://", "https://")):
        raise CliError("--batch and --no-wait need --model URL of a server with the Batch API (.../v1), or OPENAI_BASE_URL")
    key = os.environ.get(key_variable()) or ""
    name = args.model_name or next(iter(served_models(url, api_key=key or None)), None)
    if not name:
        raise CliError(f"{url} lists no model; give --model-name NAME")
    try:
        return _run_to(args, plan, openai_batch(url, model=name, api_key=key, wait=not args.no_wait))
    except BatchesPending as exc:
        print(f"distilfn: {exc}; see `distilfn batches`", file=sys.stderr)
        return 75


def cmd_batches(args: argparse.Namespace) -> int:
    import datetime as dt

    from distilfn.run.batches import list_batches
    from distilfn.run.cache import _cache_file, default_cache_dir

    records = list_batches(_cache_file(args.cache or default_cache_dir()))
    if not records:
        print("no batches in this cache")
        return 0
    print(f"{'batch':<32}{'status':<12}{'requests':>9}{'waiting':>9}  {'created (UTC)':<20}model @ endpoint")
    for r in records:
        created = dt.datetime.fromtimestamp(r.created, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{(r.batch_id or '(not created)'):<32}{r.status:<12}{r.requests:>9}{r.waiting:>9}  {created:<20}{r.model} @ {r.endpoint}")
    return 0


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def cmd_preview(args: argparse.Namespace) -> int:
    from distilfn.inputs import scan_input

    plan = load_plan(args.plan, args.plan_name)
    if args.input:
        _check_input(args.input)
    data = scan_input(args.input).head(args.rows).collect() if args.input else None
    print(plan.preview(data, rows=args.rows))
    return 0


def demo_plan(max_tokens: int | None = None) -> Any:
    """The README's demo: ``evol_instruct(n=3) >> ultrafeedback()``, with short answers
    (:data:`DEMO_MAX_TOKENS`, or ``max_tokens`` for every step) so that it finishes in
    about a minute on two cores."""
    lengths = DEMO_MAX_TOKENS if max_tokens is None else dict.fromkeys(DEMO_MAX_TOKENS, max_tokens)
    from distilfn.tasks import (
        evol_instruct_task,
        text_generation,
        ultrafeedback,
        ultrafeedback_task,
    )
    from distilfn.tasks.evol_instruct import evolution_plan

    rewrite = evol_instruct_task(params={"max_tokens": lengths["rewrite"]})
    evolve = evolution_plan(rewrite, n=3, store_evolutions=False, include_original=False, answer=None,
                            source="instruction", evolved="evolved_instruction", name="evol_instruct")
    answers = text_generation().with_params(max_tokens=lengths["answer"])
    plan = evolve >> ultrafeedback(generate_answers=answers)
    judge = ultrafeedback_task(num_generations=4)
    return _with_judge_params(plan, judge.name, {"max_tokens": lengths["judge"]})


def _with_judge_params(plan: Any, name: str, params: dict[str, Any]) -> Any:
    """``plan`` with ``params`` on every task called ``name`` (the judge inside ``ultrafeedback()``)."""
    import msgspec

    from distilfn.task import Task

    def visit(value: Any) -> Any:
        if isinstance(value, Task):
            return value.with_params(**params) if value.name == name else value
        if isinstance(value, tuple):
            return tuple(visit(v) for v in value)
        if isinstance(value, msgspec.Struct):
            changes = {f: visit(getattr(value, f)) for f in value.__struct_fields__}
            changed = {f: v for f, v in changes.items() if v is not getattr(value, f)}
            return msgspec.structs.replace(value, **changed) if changed else value
        return value

    return visit(plan)


def cmd_demo(args: argparse.Namespace) -> int:
    import polars as pl

    from distilfn.run import RunStats

    _check_output(args.output)
    plan = demo_plan(args.max_tokens)
    print(str(plan), file=sys.stderr)
    data = pl.DataFrame({"instruction": DEMO_INSTRUCTIONS[: args.rows]})
    model = model_from_option(args.model, args.model_name, rpm=args.rpm, tpm=args.tpm)
    _notice(
        f"distilfn demo: {args.rows} instructions x (3 rewrites, 4 answers in one request, 1 judge call) = "
        f"{5 * args.rows} requests; on the embedded model about a minute on two cores"
    )
    stats = RunStats()
    params = {k: v for k, v in _params(args).items() if k != "max_tokens"}  # in the plan itself
    out = plan.run_to(
        data, args.output, model,
        params=params, cache=_cache_option(args), prices=_prices(args), max_cost=args.max_cost,
        progress=False if args.quiet else "lines", summary=False, stats=stats, restart=True, warn_failures=False,
    )
    if not args.quiet:
        _print_summary(stats)
    frame = out.read()
    shown = [c for c in ("instruction", "evolved_instruction", "generations", "ratings", "model_name") if c in frame.columns]
    with pl.Config(fmt_str_lengths=60, tbl_width_chars=160, fmt_table_cell_list_len=4):
        print(frame.select(shown))
    ratings = frame["ratings"].explode().drop_nulls() if "ratings" in frame.columns else pl.Series([])
    mean = f"{ratings.mean():.2f}" if ratings.len() else "-"
    print(f"wrote {frame.height} rows to {out}; {ratings.len()} ratings parsed, mean {mean}")
    if out.failed:  # a tiny model's answers; the demo shows the plumbing, so it still succeeds
        _notice(f"distilfn demo: {out.failed} of {out.rows_in} rows have an error in some step (see the meta.<step> columns' 'error')")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from distilfn.run.cache import clear_cache, default_cache_dir

    if args.action == "path":
        print(args.path or default_cache_dir())
    else:
        removed = clear_cache(args.path)
        print(f"removed {removed} cached answers")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one line for a bad option, and the way to the help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("distilfn")
    except PackageNotFoundError:  # run from a source tree
        return "unknown"


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
        return value

    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``distilfn --help``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug log on stderr (or in --log-file)")
    common.add_argument("--log-file", metavar="FILE", help="write the debug log to FILE instead of stderr (implies -v)")
    common.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")

    parser = _Parser(
        prog="distilfn",
        description="Build synthetic datasets and AI-feedback labels with LLMs.",
        epilog="Models: --model URL (an OpenAI-compatible server's /v1 root), --model local (the embedded SmolLM2), "
               "or set DISTILFN_MODEL / OPENAI_BASE_URL. Run `distilfn COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"distilfn {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def model_options(p: argparse.ArgumentParser, max_tokens_help: str = "max tokens per answer, for every step that does not set its own (over the catalogue's suggested lengths)") -> None:
        g = p.add_argument_group("model")
        g.add_argument("--model", help="http(s) URL of an OpenAI-compatible server (.../v1), 'local', or a model name at OPENAI_BASE_URL "
                                       "(default: DISTILFN_MODEL, else OPENAI_BASE_URL, else the embedded model)")
        g.add_argument("--model-name", help="the model to ask for at that server (default: the first it lists)")
        g.add_argument("--max-tokens", type=_positive(int), metavar="N", help=max_tokens_help)
        g.add_argument("--temperature", type=_non_negative_float, metavar="T", help="sampling temperature, for every step that does not set its own")
        g.add_argument("--seed", type=int, help="sampling seed sent with every request (the embedded model then "
                       "answers one request at a time, so that the same seed repeats its answers)")
        g.add_argument("--rpm", type=_positive(float), metavar="N", help="at most N requests per minute to the server")
        g.add_argument("--tpm", type=_positive(float), metavar="N", help="at most N tokens per minute to the server")

    def cost_options(p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("cost")
        g.add_argument("--price", action="append", metavar="NAME=IN,OUT",
                       help="US dollars per million input and output tokens of model NAME (repeatable; "
                            "providers' APIs are priced by genai-prices when installed)")
        g.add_argument("--max-cost", type=_positive(float), metavar="USD",
                       help="stop before the projected cost of the requests sent passes USD dollars (finished rows are kept)")

    def cache_options(p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("cache")
        g.add_argument("--cache", metavar="DIR", help="request cache directory or file (default: the user cache dir)")
        g.add_argument("--no-cache", action="store_true", help="do not read or write the request cache")

    run = commands.add_parser("run", help="run PLAN.py over an input file, streaming rows to an output file", parents=[common],
                              description="Run the plan defined as `plan` in PLAN.py. Re-running resumes: finished rows are kept and "
                                          "cached answers are not requested again. Exit status: 0 done, 1 some rows failed, "
                                          "2 a wrong plan, input, output or option, 130/143 interrupted.")
    run.add_argument("plan", metavar="PLAN.py", help="a Python file that defines `plan`")
    run.add_argument("--input", required=True, help="input rows: .jsonl, .parquet or .csv")
    run.add_argument("--output", required=True, help="output file: .parquet or .jsonl")
    run.add_argument("--plan-name", default="plan", help="the variable to run (default: plan)")
    model_options(run)
    cost_options(run)
    cache_options(run)
    g = run.add_argument_group("run")
    g.add_argument("--limit", type=int, help="only the first N input rows")
    g.add_argument("--max-concurrency", type=_positive(int), metavar="N", help="requests in flight (default: 64)")
    g.add_argument("--chunk-rows", type=_positive(int), default=1000, metavar="N", help="rows per written chunk (default: 1000)")
    g.add_argument("--restart", action="store_true", help="ignore what an earlier run of --output finished and start over")
    g.add_argument("--allow-failures", action="store_true", help="exit 0 even when some rows failed (they keep their errors)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress display or summary")
    g.add_argument("--batch", action="store_true", help="send the requests through the OpenAI Batch API at --model (about half the price, within a day); up to 10,000 requests per batch unless --max-concurrency says")
    g.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run on Ray Data (a cluster at ADDRESS, else RAY_ADDRESS or a local one); --output is a directory")
    g.add_argument("--actors", type=_positive(int), metavar="N", help="with --ray: actors in the pool (default: 2); --max-concurrency is per actor")
    g.add_argument("--no-wait", action="store_true", help="with --batch: submit what is ready and exit (75 while batches are pending); run again to collect")
    run.set_defaults(func=cmd_run)

    batches = commands.add_parser("batches", help="list the offline batches a cache knows, with their status", parents=[common])
    batches.add_argument("--cache", metavar="DIR", help="request cache directory or file (default: the user cache dir)")
    batches.set_defaults(func=cmd_batches)

    preview = commands.add_parser("preview", help="print the chats a plan would send, without calling any model", parents=[common],
                                  description="A true dry run: render each model step's chat for the first rows; columns made by "
                                              "earlier steps show as <placeholders>.")
    preview.add_argument("plan", metavar="PLAN.py", help="a Python file that defines `plan`")
    preview.add_argument("--input", help="input rows to render: .jsonl, .parquet or .csv (default: the first task's example)")
    preview.add_argument("--rows", type=_positive(int), default=1, help="how many rows to show (default: 1)")
    preview.add_argument("--plan-name", default="plan", help="the variable to preview (default: plan)")
    preview.set_defaults(func=cmd_preview)

    demo = commands.add_parser("demo", help="run evol_instruct(n=3) >> ultrafeedback() on a few instructions (the README's main job)",
                               parents=[common],
                               description="Evolve three instructions three times, write four answers to each and rate them, "
                                           "on the embedded model unless --model says otherwise; writes --output and prints a summary.")
    model_options(demo, "max tokens per answer of every step (default: "
                        + ", ".join(f"{n} {step}" for step, n in DEMO_MAX_TOKENS.items()) + ")")
    cost_options(demo)
    cache_options(demo)
    demo.add_argument("--rows", type=int, default=3, choices=range(1, len(DEMO_INSTRUCTIONS) + 1), metavar="N",
                      help="instructions to use (1-3, default 3)")
    demo.add_argument("--output", default="out/demo.parquet", help="where to write the dataset (default: out/demo.parquet)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress display or summary")
    demo.set_defaults(func=cmd_demo)

    cache = commands.add_parser("cache", help="show or clear the request cache", parents=[common],
                                description="`path` prints where the cache is; `clear` removes every cached answer.")
    cache.add_argument("action", choices=["path", "clear"], help="path: print the cache's location; clear: empty it")
    cache.add_argument("--path", help="cache directory or file (default: the user cache dir)")
    cache.set_defaults(func=cmd_cache)
    return parser


def _logging(args: argparse.Namespace) -> None:
    if not (args.verbose or args.log_file):
        return
    handler: logging.Handler = logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("distilfn")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``distilfn`` console script: one line, not a traceback, when something is wrong."""
    from distilfn.errors import RunInterrupted

    args = build_parser().parse_args(argv)
    debug = args.debug or bool(os.environ.get("DISTILFN_DEBUG"))
    _logging(args)
    try:
        return args.func(args)
    except RunInterrupted as exc:
        print(f"distilfn: {exc}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("distilfn: interrupted; the finished rows are saved: run the same command again to resume", file=sys.stderr)
        return 130
    except CliError as exc:
        if debug:
            raise
        print(f"distilfn: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # an ordinary mistake or a failure: one line (--debug shows the traceback)
        if debug:
            raise
        from distilfn.errors import BudgetExceededError

        text = in_cli_terms(" ".join(str(exc).split()) or type(exc).__name__)
        code = 3 if isinstance(exc, BudgetExceededError) else 2
        print(f"distilfn: {type(exc).__name__}: {text} (--debug shows the traceback)", file=sys.stderr)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
