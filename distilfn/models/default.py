"""Which model a run uses when none is passed: environment first, else the local model.

Resolution order:

1. ``DISTILFN_MODEL``: ``local`` means :func:`~distilfn.models.local.local`; an
   ``http(s)://`` URL means an OpenAI-compatible server there (the ``/v1`` root), using
   the model named by ``DISTILFN_MODEL_NAME`` or else the first one the server lists at
   ``GET {URL}/models``; its API key comes from ``DISTILFN_API_KEY``, else
   ``OPENAI_API_KEY``.
2. ``OPENAI_BASE_URL``: an OpenAI-compatible server there, model from
   ``DISTILFN_MODEL_NAME``, ``OPENAI_MODEL`` or the first listed; key ``OPENAI_API_KEY``.
3. Otherwise the embedded local model (one shared instance per process, so the engine
   loads once however many runs there are).

The choice is printed once to stderr, without any key.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from distilfn.errors import AuthenticationError, ModelError, TransportError
from distilfn.models.local import LocalModel, local

__all__ = ["default_model", "remote_model", "served_models", "key_variable"]

_LOCAL_NOTICE = (
    "distilfn: using the embedded local model SmolLM2-135M-Instruct "
    "(set DISTILFN_MODEL or pass model= to change)"
)
_lock = threading.Lock()
_shared_local: LocalModel | None = None
_printed: set[str] = set()


def default_model(*, environ: Mapping[str, str] | None = None, stream: TextIO | None = None) -> Any:
    """The model to use when the caller passed none (see the module docstring).

    ``environ`` defaults to ``os.environ``; ``stream`` (default stderr) gets the notice.

    >>> import io
    >>> default_model(environ={}, stream=io.StringIO()).name
    'smollm2-135m-instruct'
    """
    env = os.environ if environ is None else environ
    choice = (env.get("DISTILFN_MODEL") or "").strip()
    name = env.get("DISTILFN_MODEL_NAME") or None
    if choice:
        if choice.lower() == "local":
            return _local(stream)
        if choice.lower().startswith(("http://", "https://")):
            return remote_model(choice, name, "DISTILFN_MODEL", environ=env, stream=stream)
        msg = f"DISTILFN_MODEL must be 'local' or the http(s) URL of an OpenAI-compatible server; got {choice!r}"
        raise ValueError(msg)
    base_url = (env.get("OPENAI_BASE_URL") or "").strip()
    if base_url:
        name = name or env.get("OPENAI_MODEL") or None
        return remote_model(base_url, name, "OPENAI_BASE_URL", api_key=env.get("OPENAI_API_KEY") or "", stream=stream)
    return _local(stream)


def key_variable(environ: Mapping[str, str] | None = None) -> str:
    """The environment variable a server's API key is read from: ``DISTILFN_API_KEY`` when
    set, else ``OPENAI_API_KEY`` (a pickled model reads the same one where it lands).

    >>> key_variable({"DISTILFN_API_KEY": "k"}), key_variable({})
    ('DISTILFN_API_KEY', 'OPENAI_API_KEY')
    """
    env = os.environ if environ is None else environ
    return "DISTILFN_API_KEY" if env.get("DISTILFN_API_KEY") else "OPENAI_API_KEY"


def served_models(base_url: str, *, api_key: str | None = None, timeout: float = 10.0) -> list[str]:
    """The model ids an OpenAI-compatible server lists at ``GET {base_url}/models``.

    One blocking request (the standard library's client: this runs once, before any loop).
    A redirect is followed only within the same scheme, host and port: the key, and the
    choice of model, stay with the configured server.

    >>> served_models("file:///etc")
    Traceback (most recent call last):
    ...
    distilfn.errors.TransportError: could not list the models of file:///etc: ValueError; set DISTILFN_MODEL_NAME to skip this lookup
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    shown = _redact(base_url)
    status = 200
    try:
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(base_url)  # urllib would also open file:// and ftp:// URLs
        request = urllib.request.Request(f"{base_url.rstrip('/')}/models", headers=headers)
        with _opener().open(request, timeout=timeout) as response:  # http(s) checked above
            body = response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, b""
        exc.close()
        if 300 <= status < 400:
            msg = (
                f"{shown} answered {status} when listing its models (a redirect to another host, not followed so "
                "that the key stays with the configured server); set the URL to the final one"
            )
            raise ModelError(msg, status=status) from None
    except (OSError, ValueError) as exc:  # URLError, refused, timed out, bad URL
        msg = f"could not list the models of {shown}: {type(exc).__name__}; set DISTILFN_MODEL_NAME to skip this lookup"
        raise TransportError(msg) from None
    if status in (401, 403):
        msg = f"{shown} refused the API key when listing its models (HTTP {status})"
        raise AuthenticationError(msg, status=status)
    try:
        if status >= 300:
            raise ValueError(status)
        ids = [str(entry["id"]) for entry in json.loads(body)["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        msg = (
            f"could not read the models of {shown} (HTTP {status}, {type(exc).__name__}); "
            "set DISTILFN_MODEL_NAME to name the model"
        )
        raise ModelError(msg, status=status) from None
    return ids


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same scheme, host and port (else urllib raises the 3xx)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@functools.cache
def _opener() -> urllib.request.OpenerDirector:
    """urllib's opener with :class:`_SameOriginRedirects` (made on first use: it reads the proxy settings)."""
    return urllib.request.build_opener(_SameOriginRedirects)


def _local(stream: TextIO | None) -> LocalModel:
    global _shared_local
    with _lock:
        if _shared_local is None:
            _shared_local = local()
        model = _shared_local
    _notice(_LOCAL_NOTICE, stream)
    return model


def remote_model(url: str, name: str | None, source: str, *, api_key: str | None = None,
                 environ: Mapping[str, str] | None = None, check: bool = False, stream: TextIO | None = None,
                 **options: Any) -> Any:
    """The OpenAI-compatible model at ``url``, which came from ``source`` (a variable or an
    option, named in the notice and the errors). A key written into the URL is refused
    before any request.

    ``api_key`` None reads the key from :func:`key_variable` of ``environ`` (a pickled copy,
    say on a Ray worker, reads the same variable); ``""`` sends none. ``name`` None takes the
    first model the server lists at ``GET /models``; ``check`` lists them even when the name
    is given, to prove the server is up (one that lists none can still serve the named
    model). ``options`` go to :func:`~distilfn.models.openai.openai_compatible`.
    """
    from distilfn.models.openai import openai_compatible, refuse_userinfo

    refuse_userinfo(url, source)
    env = os.environ if environ is None else environ
    key_env = key_variable(env) if api_key is None else "OPENAI_API_KEY"
    key = (env.get(key_env) or "") if api_key is None else api_key
    if name is None or check:
        try:
            ids = served_models(url, api_key=key or None)
        except (TransportError, AuthenticationError):
            raise
        except ModelError:
            if name is None:
                raise
            ids = [name]
        if name is None:
            if not ids:
                raise ModelError(f"{_redact(url)} (from {source}) serves no model; set DISTILFN_MODEL_NAME")
            name = ids[0]
    model = openai_compatible(url, model=name, api_key=key, api_key_env=key_env, **options)
    _notice(f"distilfn: using model {name!r} at {_redact(url)} (from {source})", stream)
    return model


def _notice(message: str, stream: TextIO | None) -> None:
    with _lock:
        if message in _printed:
            return
        _printed.add(message)
    print(message, file=stream or sys.stderr, flush=True)


def _redact(url: str) -> str:
    """The URL without user info, query or fragment (they may hold secrets).

    >>> _redact("https://user:secret@host:8000/v1?key=abc")
    'https://host:8000/v1'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
