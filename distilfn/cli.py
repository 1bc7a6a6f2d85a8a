"""The ``distilfn`` command line: run, preview, demo, cache."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "load_plan", "model_from_option"]

DEMO_INSTRUCTIONS = [
    "Explain photosynthesis to a ten-year-old.",
    "Write a haiku about rain.",
    "Give three tips for writing clear commit messages.",
]


def load_plan(path: str, name: str = "plan") -> Any:
    """The plan (or task) named ``name`` in the Python file at ``path``."""
    from distilfn.plan import as_plan

    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"distilfn: no plan file at {path!r}")
    namespace = runpy.run_path(str(file), run_name="__distilfn_plan__")
    if name not in namespace:
        defined = sorted(k for k, v in namespace.items() if as_plan(v) is not None)
        hint = f"; it defines {', '.join(defined)} (use --plan-name)" if defined else ""
        raise SystemExit(f"distilfn: {path} defines no variable {name!r}{hint}")
    plan = as_plan(namespace[name])
    if plan is None:
        raise SystemExit(f"distilfn: {name!r} in {path} is a {type(namespace[name]).__name__}, not a task or plan")
    return plan


def model_from_option(option: str | None, model_name: str | None = None) -> Any:
    """``--model``: an http(s) URL of an OpenAI-compatible server, ``local``, or a model
    name served at ``OPENAI_BASE_URL``/``DISTILFN_MODEL``; None means the default model."""
    from distilfn.models.default import default_model

    env = dict(os.environ)
    if model_name:
        env["DISTILFN_MODEL_NAME"] = model_name
    if option is None:
        return default_model(environ=env) if model_name else None
    if option == "local" or option.startswith(("http://", "https://")):
        env["DISTILFN_MODEL"] = option
        return default_model(environ=env)
    if not (env.get("OPENAI_BASE_URL") or env.get("DISTILFN_MODEL", "").startswith("http")):
        raise SystemExit(
            f"distilfn: --model {option!r} is a model name, but no server is set: give a URL "
            "(--model http://host:8000/v1 --model-name NAME) or set OPENAI_BASE_URL"
        )
    env["DISTILFN_MODEL_NAME"] = option
    return default_model(environ=env)


def _cache_option(args: argparse.Namespace) -> Any:
    return False if args.no_cache else (args.cache or None)


def cmd_run(args: argparse.Namespace) -> int:
    from distilfn.run import RunStats

    plan = load_plan(args.plan, args.plan_name)
    model = model_from_option(args.model, args.model_name)
    if args.ray is not None:
        from distilfn.ray import run_file_to

        result = run_file_to(
            plan, args.input, args.output, model, address=args.ray or None, quiet=args.quiet, restart=args.restart,
            limit=args.limit, cache=_cache_option(args), max_concurrency=args.max_concurrency,
            actors=args.actors, warn_failures=False,
        )
        return _finish(args, result, None)
    stats = RunStats()
    result = plan.run_to(
        args.input, args.output, model,
        limit=args.limit, cache=_cache_option(args), max_concurrency=args.max_concurrency,
        progress=False if args.quiet else None, summary=False, stats=stats, restart=args.restart,
        chunk_rows=args.chunk_rows, warn_failures=False,
    )
    return _finish(args, result, stats)


def _finish(args: argparse.Namespace, result: Any, stats: Any) -> int:
    from distilfn.run.progress import summary_table

    if result.already_complete:
        print(f"distilfn: {result.path} is already complete ({result.rows_out} rows); pass --restart to run it again", file=sys.stderr)
    elif not args.quiet and stats is not None:
        from rich.console import Console

        Console(stderr=True).print(summary_table(stats))
    print(result.path)
    if result.failed:
        again = " ".join(["distilfn", *(_quote(a) for a in sys.argv[1:] if a != "--restart")]) if sys.argv[1:] else "the same command"
        print(
            f"distilfn: {result.failed} of {_counted(args, result)} failed (their errors are in the meta.<step> columns); "
            f"run the same command again to retry them: {again}",
            file=sys.stderr,
        )
        return 0 if args.allow_failures else 1
    return 0


def _counted(args: argparse.Namespace, result: Any) -> str:
    """What ``result.failed`` counts: input rows locally, output rows on Ray (no input row ids travel)."""
    return f"{result.rows_out} output rows" if args.ray is not None else f"{result.rows_in} input rows"


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def cmd_preview(args: argparse.Namespace) -> int:
    from distilfn.inputs import scan_input

    plan = load_plan(args.plan, args.plan_name)
    data = scan_input(args.input).head(args.rows).collect() if args.input else None
    print(plan.preview(data, rows=args.rows))
    return 0


def demo_plan() -> Any:
    """The README's demo: evolve instructions three times, then rate answers to them."""
    from distilfn.tasks import evol_instruct, ultrafeedback

    return evol_instruct(n=3) >> ultrafeedback()


def cmd_demo(args: argparse.Namespace) -> int:
    import polars as pl
    from rich.console import Console

    from distilfn.run import RunStats
    from distilfn.run.progress import summary_table

    console = Console(stderr=True)
    plan = demo_plan()
    console.print(str(plan), markup=False, highlight=False)
    data = pl.DataFrame({"instruction": DEMO_INSTRUCTIONS[: args.rows]})
    model = model_from_option(args.model, args.model_name)
    stats = RunStats()
    out = plan.run_to(
        data, args.output, model,
        params={"max_tokens": args.max_tokens, "temperature": 0.7}, cache=_cache_option(args),
        progress=None, summary=False, stats=stats, restart=True, warn_failures=False,
    )
    console.print(summary_table(stats))
    frame = out.read()
    shown = [c for c in ("instruction", "evolved_instruction", "generations", "ratings") if c in frame.columns]
    with pl.Config(fmt_str_lengths=60, tbl_width_chars=160, fmt_table_cell_list_len=4):
        print(frame.select(shown))
    ratings = frame["ratings"].explode().drop_nulls() if "ratings" in frame.columns else pl.Series([])
    print(f"wrote {frame.height} rows to {out}; {ratings.len()} ratings parsed, mean {ratings.mean() if ratings.len() else float('nan'):.2f}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from distilfn.run.cache import clear_cache, default_cache_dir

    if args.action == "path":
        print(args.path or default_cache_dir())
    else:
        removed = clear_cache(args.path)
        print(f"removed {removed} cached answers")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``distilfn --help``)."""
    parser = argparse.ArgumentParser(
        prog="distilfn",
        description="Build synthetic datasets and AI-feedback labels with LLMs.",
        epilog="Models: --model URL (OpenAI-compatible server), --model local, or set DISTILFN_MODEL / OPENAI_BASE_URL.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="http(s) URL of an OpenAI-compatible server (.../v1), 'local', or a model name at OPENAI_BASE_URL")
        p.add_argument("--model-name", help="the model to ask for at that server (default: the first it lists)")

    def cache_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cache", metavar="DIR", help="request cache directory or file (default: the user cache dir)")
        p.add_argument("--no-cache", action="store_true", help="do not read or write the request cache")

    run = commands.add_parser("run", help="run PLAN.py over an input file, streaming rows to an output file",
                              description="Run the plan defined as `plan` in PLAN.py. Re-running resumes: finished rows are kept and cached answers are not requested again.")
    run.add_argument("plan", metavar="PLAN.py", help="a Python file that defines `plan`")
    run.add_argument("--input", required=True, help="input rows: .jsonl, .parquet or .csv")
    run.add_argument("--output", required=True, help="output file: .parquet or .jsonl")
    model_options(run)
    cache_options(run)
    run.add_argument("--limit", type=int, help="only the first N input rows")
    run.add_argument("--max-concurrency", type=int, help="requests in flight (default: 64)")
    run.add_argument("--chunk-rows", type=int, default=1000, help="rows per written chunk (default: 1000)")
    run.add_argument("--restart", action="store_true", help="ignore what an earlier run of --output finished and start over")
    run.add_argument("--allow-failures", action="store_true", help="exit 0 even when some rows failed (they keep their errors)")
    run.add_argument("--plan-name", default="plan", help="the variable to run (default: plan)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress display or summary")
    run.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                     help="run on Ray Data (a cluster at ADDRESS, else RAY_ADDRESS or a local one); --output is a directory")
    run.add_argument("--actors", type=int, help="with --ray: actors in the pool (default: 2); --max-concurrency is per actor")
    run.set_defaults(func=cmd_run)

    preview = commands.add_parser("preview", help="print the chats a plan would send, without calling any model",
                                  description="A true dry run: render each model step's chat for the first rows; columns made by earlier steps show as <placeholders>.")
    preview.add_argument("plan", metavar="PLAN.py")
    preview.add_argument("--input", help="input rows to render (default: the first task's example)")
    preview.add_argument("--rows", type=int, default=1, help="how many rows to show (default: 1)")
    preview.add_argument("--plan-name", default="plan")
    preview.set_defaults(func=cmd_preview)

    demo = commands.add_parser("demo", help="run evol_instruct(n=3) >> ultrafeedback() on a few instructions (the README's main job)")
    model_options(demo)
    cache_options(demo)
    demo.add_argument("--rows", type=int, default=3, choices=range(1, len(DEMO_INSTRUCTIONS) + 1), metavar="N", help="instructions to use (1-3, default 3)")
    demo.add_argument("--output", default="out/demo.parquet", help="where to write the dataset (default: out/demo.parquet)")
    demo.add_argument("--max-tokens", type=int, default=192, help="max tokens per answer (default: 192)")
    demo.set_defaults(func=cmd_demo)

    cache = commands.add_parser("cache", help="show or clear the request cache")
    cache.add_argument("action", choices=["path", "clear"])
    cache.add_argument("--path", help="cache directory or file (default: the user cache dir)")
    cache.set_defaults(func=cmd_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``distilfn`` console script: one line, not a traceback, when something is wrong."""
    from distilfn.errors import DistilfnError, RunInterrupted

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RunInterrupted as exc:
        print(f"distilfn: {exc}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("distilfn: interrupted; the finished rows are saved: run the same command again to resume", file=sys.stderr)
        return 130
    except (DistilfnError, FileNotFoundError, ValueError) as exc:
        if os.environ.get("DISTILFN_DEBUG"):
            raise
        print(f"distilfn: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
