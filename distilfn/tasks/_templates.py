"""Prompt templates shipped as package data (``distilfn/tasks/templates/*.jinja2``)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

__all__ = ["render_template", "template_source"]


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("distilfn.tasks", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


@cache
def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)


def render_template(name: str, **values: Any) -> str:
    """Render the packaged template ``name`` (e.g. ``"ultrafeedback/honesty.jinja2"``)."""
    return _template(name).render(**values).strip()


def template_source(name: str) -> str:
    """The raw text of a packaged template (with its citation comment)."""
    loader = _environment().loader
    assert loader is not None
    return loader.get_source(_environment(), name)[0]
