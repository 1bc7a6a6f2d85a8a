"""Prompt templates shipped as package data (``distilfn/tasks/templates/*.jinja2``)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

__all__ = ["render_template", "template_source", "render_compiled"]


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("distilfn.tasks", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,  # package data does not change while a process runs: no stat per {% include %}
    )


@cache
def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)


def render_template(name: str, **values: Any) -> str:
    """Render the packaged template ``name`` (e.g. ``"ultrafeedback/honesty.jinja2"``)."""
    return render_compiled(_template(name), values).strip()


@cache
def _globals(template: jinja2.Template) -> dict[str, Any]:
    return dict(template.globals)


def render_compiled(template: jinja2.Template, values: dict[str, Any]) -> str:
    """``template.render(**values)`` at half the cost: the context is made from one dict
    of the template's globals and ``values`` (``new_context(..., shared=True)``), not
    layered at every call. Prompts are rendered once per request, so this is a hot path.

    >>> render_compiled(jinja2.Template("Hi {{ who }}{% for i in range(2) %}!{% endfor %}"), {"who": "you"})
    'Hi you!!'
    """
    context = template.new_context({**_globals(template), **values}, shared=True)
    return template.environment.concat(template.root_render_func(context))  # type: ignore[attr-defined]


def template_source(name: str) -> str:
    """The raw text of a packaged template (with its citation comment)."""
    loader = _environment().loader
    assert loader is not None
    return loader.get_source(_environment(), name)[0]
