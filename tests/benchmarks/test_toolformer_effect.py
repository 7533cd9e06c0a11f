"""The Toolformer-effect run's report: call quality from eval's per-item lines, the summary it reads, the chart."""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import ModuleType

import pytest
from script_module import BENCHMARKS, load_script


@pytest.fixture(scope="module")
def effect() -> ModuleType:
    return load_script(BENCHMARKS / "toolformer_effect.py")


def item(mode: str, gold: str, calls: list[dict[str, object]]) -> str:
    return json.dumps({"mode": mode, "question": "q", "gold": gold, "prediction": "", "correct": False, "exact": False,
                       "transcript": "", "calls": calls, "seconds": 0.1, "stop_reason": "eos"})


def test_call_quality_counts_calls_that_computed_the_gold_answer(effect: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    right = {"tool": "Calculator", "args": ["7 * 24"], "result": "168", "ok": True}
    wrong = {"tool": "Calculator", "args": ["7 + 24"], "result": "31", "ok": True}
    failed = {"tool": "Calculator", "args": ["7 *"], "result": None, "ok": False, "error": "Error: bad"}
    path.write_text("\n".join([
        item("no_tools", "168", []),                    # tools-off lines are not counted
        item("tools", "168", [right]), item("tools", "1,034", [{**right, "result": "1034"}]),
        item("tools", "168", [wrong]), item("tools", "168", [failed]), item("tools", "168", []),
    ]) + "\n")
    assert effect.call_quality(path) == {"call_rate": 0.8, "right_call_rate": 0.4, "right_given_call": 0.5}


def test_a_date_call_is_right_when_the_calendar_names_the_answer(effect: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    today = {"tool": "Calendar", "args": [], "result": "Today is Wednesday, June 18, 2025.", "ok": True}
    path.write_text("\n".join([item("tools", "Wednesday", [today]), item("tools", "Thursday", [today]),
                                item("tools", "2025", [])]) + "\n")
    assert effect.call_quality(path, "dates") == {"call_rate": 0.6667, "right_call_rate": 0.3333,
                                                  "right_given_call": 0.5}


def test_the_summary_is_the_last_json_line_of_the_eval_log(effect: ModuleType, tmp_path: Path) -> None:
    log = tmp_path / "eval.log"
    log.write_text('task math\nmode ...\n{"task": "math", "tools": {"accuracy": 0.5}}\n')
    assert effect.eval_summary(log)["tools"]["accuracy"] == 0.5
    (tmp_path / "empty.log").write_text("Traceback ...\n")
    with pytest.raises(SystemExit, match="no summary"):
        effect.eval_summary(tmp_path / "empty.log")


def test_the_chart_draws_both_tables(effect: ModuleType, tmp_path: Path) -> None:
    def cell(acc: float) -> dict[str, float]:
        return {"accuracy": acc, "n": 10}

    results = {task: {m: {"no_tools": cell(0.1), "tools": cell(0.4)} for m in ("base", "trained")}
               for task in ("math", "dates")}
    effect.plot({"results": results}, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_public_word_problem_targets(effect: ModuleType) -> None:
    def res(base_off: float, trained_off: float, trained_on: float) -> dict[str, object]:
        return {"base": {"no_tools": {"accuracy": base_off}}, "trained": {"no_tools": {"accuracy": trained_off},
                                                                          "tools": {"accuracy": trained_on}}}

    assert effect.public_targets(None) is None
    met = effect.public_targets(res(0.05, 0.10, 0.30))
    assert met["trained_tools_minus_base_no_tools"] == 0.25 and met["met"] is True
    assert effect.public_targets(res(0.05, 0.25, 0.30))["met"] is False     # +5 over itself without tools: missed
    assert effect.PUBLIC_MATH.is_file()


def test_the_rebuild_line_names_every_setting_that_made_the_adapter(effect: ModuleType) -> None:
    """The shipped adapter's README gave `--out runs/effect --ship` and the data-gen flags only: run as written it
    annotated 600 texts for 3 epochs, not the 400 for 4 it said, and --ship put that other adapter in its place."""
    args = effect.build_parser().parse_args(["--texts", "400", "--math", "100", "--dates", "24", "--epochs", "4",
                                             "--data-gen-args", "--tau-p 0.1 --samples 2"])
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    flags = effect.rebuild_flags(settings)
    again = effect.build_parser().parse_args(["--out", "elsewhere", *shlex.split(flags)])
    assert {k: v for k, v in vars(again).items() if k != "out"} == {k: v for k, v in vars(args).items() if k != "out"}
    assert "--texts 400" in flags and "--epochs 4.0" in flags and "--data-gen-args '--tau-p 0.1 --samples 2'" in flags
