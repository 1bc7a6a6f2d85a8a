"""The README is tested: every Python block runs, in order, against the fake server, after the
main-job install (no test extra); its fake model and its printed outline are the real ones."""

from __future__ import annotations

import re
from pathlib import Path

import datasets
import pytest
from readme_fake import fake
from without_packages import MARK, TEST_EXTRA, python_without

from distilfn.testing.fakeserver import FakeServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
NEEDS_TEST_EXTRA = [b for b in BLOCKS if "check_parser" in b]
NEEDS_RAY = [b for b in BLOCKS if "import ray" in b]  # run on the Ray tests' cluster (tests/test_ray.py)
MAIN_JOB = [b for b in BLOCKS if b not in NEEDS_TEST_EXTRA and b not in NEEDS_RAY]

CHILD = """
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__readme__"}
for number, block in enumerate(blocks, start=1):
    print(f"=== README block {number}", flush=True)
    exec(compile(block, f"README python block {number}", "exec"), namespace)
print("=== every block ran")
"""


def test_the_readme_fake_is_the_one_the_tests_use():
    source = (Path(__file__).parent / "readme_fake.py").read_text()
    fake_source = source.split("# --- README fake: begin\n")[1].split("# --- README fake: end")[0]
    assert fake_source in README


def test_the_printed_outline_is_what_print_plan_shows():
    from distilfn.tasks import evol_instruct, ultrafeedback

    assert f"```\n{evol_instruct(n=3) >> ultrafeedback()}\n```" in README


def test_every_python_block_runs_after_the_main_job_install(tmp_path, monkeypatch):
    import json

    assert len(MAIN_JOB) >= 6
    (tmp_path / "blocks.json").write_text(json.dumps(MAIN_JOB))
    (tmp_path / "child.py").write_text(CHILD)
    monkeypatch.setenv("DISTILFN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DISTILFN_MODEL_NAME", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with FakeServer(reply=lambda messages, i: fake([messages])[0]) as server:
        monkeypatch.setenv("DISTILFN_MODEL", server.url)
        result = python_without(TEST_EXTRA, str(tmp_path / "child.py"), str(tmp_path / "blocks.json"), cwd=tmp_path, timeout=300)
        answered = server.stats()["completions"]
    assert MARK not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "=== every block ran" in result.stdout
    assert answered == 2 * (3 + 1 + 1)  # the tour's plan.run(df) went to the server: 2 rows x 5 requests
    assert "RowsFailedWarning" not in result.stderr  # every step's answers are well-formed
    assert "using model 'fake-model'" in result.stderr and "(from DISTILFN_MODEL)" in result.stderr
    saved = datasets.load_dataset(str(tmp_path / "out" / "evolved-rated"), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert saved.num_rows == 2 and "model_name" in saved.column_names


def test_the_check_parser_block_runs_with_the_test_extra():
    (custom,) = [b for b in BLOCKS if "oss_instruct = task(" in b]
    namespace: dict = {}
    exec(compile(MAIN_JOB[0].split("out = plan.run")[0], "README tour", "exec"), namespace)
    exec(compile(custom, "README custom task", "exec"), namespace)
    for block in NEEDS_TEST_EXTRA:
        exec(compile(block, "README check_parser", "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    assert tests
    for test in tests:
        test()


@pytest.mark.parametrize("command", ["pip install -q -e '.[local]'", "pip install -q -e '.[local,test,hf,cost,ray]'"])
def test_the_two_commands_are_the_ones_ci_and_just_use(command):
    assert command in README
    assert command.replace("pip install -q -e ", "") in (ROOT / "justfile").read_text()
