"""Share of drifted answers (distilfn.testing.drift) the catalogue reads right, per family.

    python bench/drift_share.py [samples per family]

"Right" means: the intended values read back with no error, or, for an answer that
covers the wrong number of items, an error. Prints one line per family and the first
few misses.
"""

from __future__ import annotations

import sys
from collections import Counter

from hypothesis import HealthCheck, given, settings

from distilfn import tasks as T
from distilfn.testing import drift as D


def _judge():
    return T.ultrafeedback_task()


def reader(family: str):
    """The catalogue task that reads a family's answers, and how to call it."""
    if family in ("count", "layout", "format", "json"):
        judge = _judge()
        return lambda d: judge.read(d.text, {"instruction": "q", **d.row})
    if family == "result":
        grader = T.prometheus()
        return lambda d: grader.read(d.text, {})
    if family == "instructions":
        return lambda d: T.self_instruct(num_instructions=d.row["num_instructions"]).read(d.text, {"input": "x"})
    if family == "rewrite":
        step = T.evol_instruct_task()
        return lambda d: step.read(d.text, {"instruction": "x"})
    if family == "rewrite response":
        step = T.evol_quality_task()
        return lambda d: step.read(d.text, {"instruction": "x", "response": "y"})
    if family == "scores":
        scorer = T.complexity_scorer()
        return lambda d: scorer.read(d.text, d.row)
    raise KeyError(family)


FAMILIES = {
    "count": D.count_drift(),
    "layout": D.layout_drift(),
    "format": D.format_drift(),
    "result": D.result_drift(),
    "json": D.json_drift(),
    "instructions": D.instruction_list_drift(),
    "rewrite": D.rewrite_drift(),
    "rewrite response": D.rewrite_drift(response=True),
    "scores": D.score_drift(),
}


def right(drift, parsed) -> bool:
    """Whether ``parsed`` is what ``drift`` says reading must give."""
    if drift.count_mismatch:
        return parsed.error is not None
    return parsed.error is None and all(parsed.values.get(k) == v for k, v in drift.expected.items())


def share(family: str, samples: int) -> tuple[int, int, Counter]:
    read = reader(family)
    seen = [0, 0]
    misses: Counter = Counter()

    @settings(max_examples=samples, database=None, suppress_health_check=list(HealthCheck), deadline=None)
    @given(FAMILIES[family])
    def sample(drift):
        parsed = read(drift)
        seen[0] += 1
        if right(drift, parsed):
            seen[1] += 1
        else:
            misses[drift.variant.split(",")[0]] += 1
            if sum(misses.values()) <= 2 and "-v" in sys.argv:
                print("  MISS", drift.variant, repr(drift.text[:300]), parsed, drift.expected)

    sample()
    return seen[1], seen[0], misses


if __name__ == "__main__":
    samples = int(next((a for a in sys.argv[1:] if a.isdigit()), 200))
    for family in FAMILIES:
        ok, total, misses = share(family, samples)
        print(f"{family:18s} {ok}/{total} = {ok / total:.0%}  misses: {dict(misses.most_common(5))}")
