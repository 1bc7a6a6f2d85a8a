"""A dataset you can publish: a folder with the data, a dataset card and the plan's record.

:func:`save` writes ``data/train-<digest>.parquet``, a ``README.md`` dataset card
(a YAML header the Hub and ``datasets.load_dataset`` read: configs, size category, task
categories, tags; then the plan's outline and fingerprint, the prompt of every model
step, the models per step and role, row, failure and token counts, and the citations of
the papers whose prompts were used) and ``distilfn.json`` (the same record as data).
:func:`push` uploads that folder with ``huggingface_hub`` (the ``hf`` extra).

The card is made from the frame (its ``meta.*`` columns say which models answered, how
many tokens they used and what failed) and from the plan: a :class:`~distilfn.run.result.RunResult`
of ``run_to`` carries its plan; for a frame from ``plan.run`` pass ``plan=``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from distilfn.meta import META_PREFIX
from distilfn.output.manifest import file_digest

__all__ = ["save", "push", "card_text", "size_category"]

DATA_DIR = "data"
RECORD_FILE = "distilfn.json"
TASK_CATEGORY = {"generator": "text-generation", "judge": "text-classification"}
"""The Hub's task category of each catalogue role (other roles add none)."""
_SOURCE = re.compile(r"\{#\s*Source:\s*(.*?)\s*#\}", re.S)
_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


def size_category(rows: int) -> str:
    """The Hub's size category for ``rows`` rows.

    >>> size_category(3), size_category(12_345)
    ('n<1K', '10K<n<100K')
    """
    return next((name for bound, name in _SIZES if rows < bound), "n>1B")


def _frame_of(out: Any) -> pl.DataFrame:
    if isinstance(out, pl.DataFrame):
        return out
    if isinstance(out, str | os.PathLike):
        from distilfn.output import read_output

        return read_output(out)
    msg = f"save expects a frame from plan.run, the result of plan.run_to or an output path; got {type(out).__name__}"
    raise TypeError(msg)


def _manifest_plan(out: Any) -> str | None:
    """The plan fingerprint recorded beside a ``run_to`` output, if ``out`` is one."""
    if not isinstance(out, str | os.PathLike) or isinstance(out, pl.DataFrame):
        return None
    manifest = Path(out).with_name(Path(out).name + ".manifest.json")
    try:
        return json.loads(manifest.read_text())["header"]["plan"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a task's render function (partial arguments, nested tuples, dicts)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, tuple | list | frozenset | set):
        for item in value:
            yield from _strings(item)
    elif hasattr(value, "func") and hasattr(value, "keywords"):  # functools.partial
        yield from _strings(value.args)
        yield from _strings(value.keywords)


def citations(task: Any) -> list[str]:
    """The ``Source:`` lines of the packaged templates a task renders."""
    from distilfn.tasks._templates import template_source

    found: list[str] = []
    for text in _strings(task.render):
        if text.endswith(".jinja2"):
            try:
                text = template_source(text)
            except Exception:  # not a packaged template  # noqa: S112
                continue
        found += [" ".join(m.split()) for m in _SOURCE.findall(text)]
    return list(dict.fromkeys(found))


def _compiled_for(plan: Any, frame: pl.DataFrame, input_schema: Any = None) -> Any:
    """``plan`` compiled against the input columns of its output ``frame``.

    A ``run_to`` result knows them. Otherwise the compiler says which columns the plan
    makes: it refuses to overwrite them, and a column an ``ensure`` would make comes back
    when it is left out."""
    from distilfn.compile import MODEL_NAME
    from distilfn.errors import PlanError

    if input_schema is not None:
        return plan.compile(input_schema)
    inputs = {n: d for n, d in frame.schema.items() if not n.startswith(META_PREFIX) and n != MODEL_NAME}
    while True:
        try:
            compiled = plan.compile(pl.Schema(inputs))
            break
        except PlanError as exc:
            made = next((n for n in inputs if f"overwrite the existing column {n!r}" in str(exc)), None)
            if made is None:
                raise
            del inputs[made]
    for name in list(inputs):
        fewer = {n: d for n, d in inputs.items() if n != name}
        try:
            without = plan.compile(pl.Schema(fewer))
        except PlanError:
            continue
        if name in without.schema:
            inputs, compiled = fewer, without
    return compiled


def _step_counts(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Per ``meta.<step>`` column: models, answers, errors, tokens (from the records themselves)."""
    out = []
    for name in (c for c in frame.columns if c.startswith(META_PREFIX)):
        column = pl.col(name)
        dtype = frame.schema[name]
        while isinstance(dtype, pl.List):
            column, dtype = column.explode(), dtype.inner
        if not (isinstance(dtype, pl.Struct) and "model_name" in {f.name for f in dtype.fields}):
            continue
        records = frame.select(column.alias("r")).unnest("r")
        out.append({
            "step": name[len(META_PREFIX):],
            "models": sorted(records["model_name"].drop_nulls().unique().to_list()),
            "answers": int(records["raw_output"].is_not_null().sum()),
            "errors": int(records["error"].is_not_null().sum()),
            "input_tokens": int(records["input_tokens"].sum() or 0),
            "output_tokens": int(records["output_tokens"].sum() or 0),
        })
    return out


def _failed_rows(frame: pl.DataFrame) -> int:
    errors = []
    for name in (c for c in frame.columns if c.startswith(META_PREFIX)):
        column, dtype = pl.col(name), frame.schema[name]
        depth = 0
        while isinstance(dtype, pl.List):
            dtype, depth = dtype.inner, depth + 1
        if not (isinstance(dtype, pl.Struct) and "error" in {f.name for f in dtype.fields}):
            continue
        if depth == 0:
            errors.append(column.struct.field("error").is_not_null())
        else:
            flat = column
            for _ in range(depth - 1):
                flat = flat.list.eval(pl.element().explode())
            errors.append(flat.list.eval(pl.element().struct.field("error").is_not_null()).list.any().fill_null(False))
    if not errors:
        return 0
    return int(frame.select(pl.any_horizontal(errors).sum()).item())


def record(out: Any, *, plan: Any = None) -> dict[str, Any]:
    """What the card says, as data: counts, steps, models, prompts, citations, fingerprint."""
    frame = _frame_of(out)
    plan = plan if plan is not None else getattr(out, "plan", None)
    steps = _step_counts(frame)
    info: dict[str, Any] = {
        "rows": frame.height,
        "failed_rows": _failed_rows(frame),
        "input_tokens": sum(s["input_tokens"] for s in steps),
        "output_tokens": sum(s["output_tokens"] for s in steps),
        "columns": {n: str(d) for n, d in frame.schema.items()},
        "steps": steps,
        "plan": None,
        "fingerprint": _manifest_plan(out),
        "prompts": [],
        "citations": [],
    }
    stats = getattr(out, "stats", None)
    if stats is not None and getattr(stats, "usage", None):
        info["cost_usd"] = round(stats.cost, 6) if not stats.unpriced else None
    if plan is None:
        return info
    from distilfn.plan import as_plan
    from distilfn.steps.call import model_calls

    plan = as_plan(plan)
    compiled = _compiled_for(plan, frame, getattr(out, "input_schema", None))
    info["plan"] = {"expression": repr(plan), "outline": compiled.outline()}
    info["fingerprint"] = info["fingerprint"] or compiled.fingerprint()
    roles = dict(compiled.roles)
    for step in steps:
        step["role"] = roles.get(step["step"])
    for call in model_calls(compiled.tree):
        t = call.task
        try:
            chat = t.preview()
        except Exception as exc:  # a template that needs real values
            chat = f"(no example: {type(exc).__name__})"
        info["prompts"].append({"step": call.label, "task": t.name, "role": t.role, "example": chat})
        info["citations"] += citations(t)
    info["citations"] = list(dict.fromkeys(info["citations"]))
    return info


def _yaml_header(info: dict[str, Any], *, pretty_name: str | None, license: str | None, tags: Sequence[str],
                 data_file: str) -> str:
    from huggingface_hub import DatasetCardData

    roles = {s.get("role") for s in info["steps"]}
    data = DatasetCardData(
        pretty_name=pretty_name,
        license=license,
        size_categories=[size_category(info["rows"])],
        task_categories=sorted({TASK_CATEGORY[r] for r in roles if r in TASK_CATEGORY}) or None,
        tags=list(dict.fromkeys(["synthetic", "distilfn", *(["rlaif"] if "judge" in roles else []), *tags])),
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": data_file}]}],
    )
    return data.to_yaml()


def card_text(info: dict[str, Any], *, pretty_name: str | None = None, license: str | None = None,
              tags: Sequence[str] = (), repo_id: str | None = None, data_file: str = "data/train-*.parquet") -> str:
    """The dataset card (README.md) for a :func:`record`."""
    title = pretty_name or (repo_id.split("/")[-1] if repo_id else "A dataset made with distilfn")
    header = _yaml_header(info, pretty_name=pretty_name, license=license, tags=tags, data_file=data_file)
    lines = [f"---\n{header}\n---", "", f"# {title}", "",
             "Made with distilfn from a plan of tasks whose prompts follow the papers cited below.", ""]
    lines += ["## Load it", "", "```python", "from datasets import load_dataset", "",
              f"ds = load_dataset({(repo_id or 'path/to/this/folder')!r}, split='train')", "```", ""]
    lines += ["## Counts", "", f"- rows: {info['rows']}", f"- rows with an error in some step: {info['failed_rows']}",
              f"- tokens: {info['input_tokens']} in, {info['output_tokens']} out"]
    if "cost_usd" in info:
        cost = info["cost_usd"]
        lines.append("- cost: " + ("unknown (some model had no price)" if cost is None else f"${cost:.4f}"))
    lines += ["", "| step | role | models | answers | errors | tokens in | tokens out |", "|---|---|---|---|---|---|---|"]
    for s in info["steps"]:
        lines.append(f"| {s['step']} | {s.get('role') or '-'} | {', '.join(s['models']) or '-'} | {s['answers']} | "
                     f"{s['errors']} | {s['input_tokens']} | {s['output_tokens']} |")
    lines.append("")
    if info["plan"] is not None:
        lines += ["## The plan", "", "```python", info["plan"]["expression"], "```", "", "```", *info["plan"]["outline"], "```", ""]
    lines += [f"Plan fingerprint: `{info['fingerprint'] or 'not recorded'}`", ""]
    if info["prompts"]:
        lines += ["## Prompts", "", "Each model step's chat for the task's example row:", ""]
        for p in info["prompts"]:
            lines += [f"### {p['step']} ({p['task']}, role {p['role']})", "", "```", p["example"], "```", ""]
    if info["citations"]:
        lines += ["## Citations", "", *(f"- {c}" for c in info["citations"]), ""]
    lines += ["## Columns", "", *(f"- `{n}`: {d}" for n, d in info["columns"].items()), ""]
    return "\n".join(lines)


def save(out: Any, path: str | os.PathLike[str], *, plan: Any = None, pretty_name: str | None = None,
         license: str | None = None, tags: Sequence[str] = (), repo_id: str | None = None) -> Path:
    """Write ``out`` (a frame, a ``run_to`` result or an output path) as a dataset folder at ``path``.

    The folder holds the data, a dataset card and ``distilfn.json``; ``datasets.load_dataset(path)``
    reads it, and :func:`push` uploads it. Needs the ``hf`` extra. Returns the folder.
    """
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as exc:
        msg = "distilfn.hub needs huggingface_hub: pip install 'distilfn[hf]'"
        raise ImportError(msg) from exc
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        msg = f"cannot save a dataset folder at {str(folder)!r}: it is a file"
        raise FileExistsError(msg)
    frame = _frame_of(out)
    info = record(out, plan=plan)
    data_dir = folder / DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / ".train.parquet.tmp"
    frame.write_parquet(tmp)
    # the file is named by its content: datasets caches a folder whose card lists its files
    # by the folder's name and that list, so a new file name is what makes it read new rows
    name = f"train-{file_digest(tmp)[0][:16]}.parquet"
    for old in data_dir.glob("train-*.parquet"):
        if old.name != name:
            old.unlink()
    tmp.replace(data_dir / name)
    info["data_file"] = f"{DATA_DIR}/{name}"
    card = card_text(info, pretty_name=pretty_name, license=license, tags=tags, repo_id=repo_id, data_file=info["data_file"])
    (folder / "README.md").write_text(card, encoding="utf-8")
    (folder / RECORD_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return folder


def push(out: Any, repo_id: str, *, plan: Any = None, token: str | None = None, private: bool | None = None,
         commit_message: str = "Upload a dataset made with distilfn", **card: Any) -> str:
    """Save ``out`` as a dataset folder (see :func:`save`) and upload it to the Hub as ``repo_id``.

    One ``huggingface_hub`` call makes the repository if needed, one uploads the folder; the
    token comes from ``token`` or huggingface_hub's own login. Returns the commit URL.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="distilfn-hub-") as tmp:
        folder = save(out, Path(tmp) / "dataset", plan=plan, repo_id=repo_id, **card)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder, commit_message=commit_message)
    return str(info)
