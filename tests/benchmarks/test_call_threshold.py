"""The call threshold is chosen where opening a call on call items and none on irrelevance items agree best."""
from __future__ import annotations

import pytest
from script_module import BENCHMARKS, load_script


def test_right_decisions_count_calls_on_call_items_and_none_on_irrelevance() -> None:
    module = load_script(BENCHMARKS / "call_threshold.py")
    probs = {"simple": [0.99, 0.97, 0.6], "irrelevance": [0.99, 0.7, 0.1, 0.02]}
    assert module.right_decisions(probs, 0.5) == {"simple": 1.0, "irrelevance": 0.5}
    assert module.right_decisions(probs, 0.98) == {"simple": pytest.approx(1 / 3), "irrelevance": 0.75}
    assert module.right_decisions({"simple": [], "irrelevance": [0.2]}, 0.5) == {"irrelevance": 1.0}


def test_the_choice_is_the_middle_of_the_best_plateau() -> None:
    module = load_script(BENCHMARKS / "call_threshold.py")
    # Call items sure of themselves, irrelevance items spread out: every threshold from 0.9 to 0.98 decides all right.
    probs = {"simple": [0.999, 0.995, 0.985], "irrelevance": [0.85, 0.5, 0.1]}
    chosen, grid = module.choose(probs, (0.5, 0.9, 0.93, 0.95, 0.98, 0.99))
    assert [r["mean"] for r in grid] == [pytest.approx(m, abs=1e-4) for m in (2 / 3, 1, 1, 1, 1, 5 / 6)]
    assert chosen == 0.95
    # A lone best point is chosen as it is.
    assert module.choose({"simple": [0.96], "irrelevance": [0.9]}, (0.5, 0.93, 0.99))[0] == 0.93
