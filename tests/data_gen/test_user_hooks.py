"""A tool's own hooks (proposer, admissible, admissible_grammar, restyle) failing or misbehaving cost their answer,
not the run: data_gen on the fake backend with tools whose hooks raise, exit, or return what they may not."""
from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from toolcall.data_gen import user_hooks
from toolcall.data_gen.config import DataGenConfig, FilterConfig, PositionConfig, SampleConfig
from toolcall.data_gen.pipeline import Pipeline

from toolcall.backends.fake import FakeBackend
from toolcall.backends.toy_lm import ToyLM
from toolcall.registry import ToolRegistry, make_tool
from toolcall.tool_type import Proposal

TEXT = "The shop sold 12 apples and 30 pears, a total of 42 fruits."


def echo(s: str) -> str:
    """Echoes.

    Args:
        s: The text.
    """
    return s


def total(numbers: list[int]) -> int:
    """Adds numbers.

    Args:
        numbers: The numbers.
    """
    return sum(numbers)


@pytest.fixture(autouse=True)
def _each_warning_anew() -> Iterator[None]:
    user_hooks._warned.clear()
    yield
    user_hooks._warned.clear()


def run(tool: Any) -> tuple[dict[str, Any] | None, dict[str, Any], list[str]]:
    """One text through the pipeline with `tool` alone; the output, the summary and the warnings said."""
    cfg = DataGenConfig(tools=(tool.name,), positions=PositionConfig(tau_s=0.0, k=2),
                        sample=SampleConfig(m=1, seed=1), filter=FilterConfig(tau_f=-1e9, tau_p=-1e9), overrides={})
    pipeline = Pipeline(FakeBackend(lm=ToyLM([TEXT], order=3)), ToolRegistry([tool]), cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, summary = pipeline.process(TEXT)
    return out, summary, [str(w.message) for w in caught]


def proposing(proposer: Callable[[str], Any], func: Any = echo, **more: Any) -> Any:
    return make_tool(func, func.__name__, proposer=proposer, cache=False, **more)


def boom(*_: Any) -> Any:
    raise RuntimeError("the hook broke")


def leave(*_: Any) -> Any:
    raise SystemExit(0)   # it ended the run with status 0 after two texts, no stats written


@pytest.mark.parametrize("hook", [boom, leave])
def test_a_proposer_that_fails_costs_its_proposals_and_is_said_once(hook: Callable[..., Any]) -> None:
    out, summary, said = run(proposing(hook))
    assert summary["counts"]["echo"].get("proposed", 0) == 0
    assert [s for s in said if "echo's proposer raised" in s] and len(said) == 1


@pytest.mark.parametrize("bad", [
    Proposal(49, ("\ud800x",)),        # a lone surrogate failed the corpus write
    Proposal(49, (float("nan"),)),    # written as a bare NaN, no JSON
    Proposal(49, (object(),)),        # "not JSON serializable"
    Proposal(49, "abc"),              # split into Echo(a, b, c)
    Proposal(49, ("x",), float("nan")),   # passed min_score
    Proposal(True, ("x",)),
    (49, ("x",)),                     # not a Proposal: AttributeError
])
def test_a_proposal_no_call_can_be_made_of_is_left_out(bad: Any) -> None:
    good = Proposal(49, ("42",), 0.9)
    out, summary, said = run(proposing(lambda text: [bad, good]))
    assert summary["counts"]["echo"]["proposed"] == 1 and any("echo's proposer returned" in s for s in said)
    json.dumps(out, allow_nan=False)


def test_a_list_argument_is_written_and_counted() -> None:
    # TypeError: unhashable type: 'list' when the kept call was matched with its scored candidate.
    out, summary, _ = run(proposing(lambda text: [Proposal(49, ([12, 30],), 0.9)], func=total))
    # The record lists the call as its text writes it, the list as the text of one argument (`total("[12, 30]")`).
    assert out is not None and [c["result"] for c in out["calls"] if c["args"] == ["[12, 30]"]] == ["42"]
    assert summary["kept"] == 1 and [kept for *_, kept, _ in summary["scored"]].count(True) == 1


@pytest.mark.parametrize("restyle", [boom, lambda r, f: "y" * 10_000_000, lambda r, f: None, lambda r, f: 42,
                                     lambda r, f: "\ud800"])
def test_a_restyle_that_fails_leaves_the_result_as_the_tool_wrote_it(restyle: Callable[..., Any]) -> None:
    # A 10 MB restyle made a 440 MB corpus; None dropped the candidate; 42 was stored; a surrogate failed the write.
    tool = proposing(lambda text: [Proposal(49, ("42",), 0.9)], restyle=restyle)
    out, _, said = run(tool)
    proposed = [c for c in (out or {}).get("calls", []) if c["args"] == ["42"]]
    assert [c["result"] for c in proposed] == ["42"] and any("echo's restyle" in s for s in said)


def test_admissible_hooks_that_fail_drop_their_calls_and_the_run_goes_on() -> None:
    tool = make_tool(echo, "echo", cache=False, admissible=boom, admissible_grammar=boom)
    _, summary, said = run(tool)
    assert summary["tools"] == ["echo"]
    assert any("echo's admissible_grammar raised" in s for s in said)


@pytest.mark.parametrize(("flag", "value", "words"), [
    # Each ran: every call failing (timeouts), a traceback after the model loaded (seed, temperature), or a
    # threshold that every comparison fails (NaN kept nothing, or every proposal).
    ("--call-timeout", "0", "a time limit must be more than 0"), ("--call-timeout", "nan", "a time limit"),
    ("--seed", "100000000000000", "seed (--seed) must be in [0, 2^32)"),
    ("--temperature", "inf", "temperature (--temperature) must be in [0, 2]"),
    ("--tau-f", "nan", "tau_f (--tau-f) must be a number, got nan"), ("--tau-p", "nan", "tau_p (--tau-p)"),
    ("--tau-s", "nan", "tau_s (--tau-s)"), ("--min-score", "nan", "min_score (--min-score)"),
])
def test_options_that_would_misrun_are_refused_before_any_model_loads(flag: str, value: str, words: str, tmp_path: Any,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from toolcall.cli import main

    (tmp_path / "in.jsonl").write_text(json.dumps({"text": TEXT}) + "\n")
    assert main(["data-gen", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out"),
                 "--backend", "fake", "--no-progress", flag, value]) == 1
    assert words in capsys.readouterr().err


def test_the_runs_result_cache_keeps_the_most_recent(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcall.data_gen import execute

    monkeypatch.setattr(execute, "RESULT_CACHE_SIZE", 2)   # it kept every result of the run: 1.8 GB by 200 texts
    runner = execute.CallRunner(ToolRegistry([make_tool(echo, cache=True)]))
    runner.run_many([("echo", [str(i)]) for i in range(5)])
    assert list(runner._cache) == [json.dumps(["echo", ["3"]]), json.dumps(["echo", ["4"]])]


def test_an_argument_grammar_the_engine_cannot_use_fails_before_the_first_text() -> None:
    from toolcall.errors import ConfigError

    tool = make_tool(echo, "echo", argument_grammar="start: (((  nonsense")
    cfg = DataGenConfig(tools=("echo",), overrides={})
    # It failed when the tool was first sampled, texts into the run (or never, when nothing was sampled).
    with pytest.raises(ConfigError, match="echo: its call grammar cannot be sampled under"):
        Pipeline(FakeBackend(lm=ToyLM([TEXT])), ToolRegistry([tool]), cfg)


def test_what_a_tool_prints_goes_to_stderr_and_stdout_holds_the_summary_alone(tmp_path: Any,
                                                                            capfd: pytest.CaptureFixture[str]) -> None:
    from toolcall.cli import main

    tools = tmp_path / "printing_tools.py"
    tools.write_text(
        "import toolcall\nfrom toolcall.tool_type import Proposal\n\n\n"
        "@toolcall.tool(proposer=lambda text: [Proposal(49, ('42',), 0.9)], cache=False)\n"
        "def Loud(s: str) -> str:\n    \"\"\"Echoes loudly.\n\n    Args:\n        s: The text.\n    \"\"\"\n"
        "    print('DEBUG from the tool')\n    return s\n")
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": TEXT}) + "\n")
    assert main(["data-gen", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out"), "--backend",
                 "fake", "--no-progress", "--tools-from", str(tools), "--no-prefilter", "--tau-p=-1e9"]) == 0
    out, err = capfd.readouterr()
    assert "DEBUG from the tool" in err   # it came before the summary, on stdout
    assert len(out.splitlines()) == 1 and json.loads(out)["texts_in"] == 1


def test_a_proposer_runs_under_its_tools_time_limit() -> None:
    import time

    def slow(text: str) -> list[Proposal]:
        time.sleep(3)
        return [Proposal(49, ("42",), 0.9)]

    began = time.perf_counter()
    # A proposer that slept 30 s slowed each text by 30 s, and one that hung held the run for good.
    _, summary, said = run(proposing(slow, timeout=0.3))
    assert time.perf_counter() - began < 2.5 and summary["counts"]["echo"].get("proposed", 0) == 0
    assert any("echo's proposer raised ToolTimeoutError: echo's proposer: timed out after 0.3 s" in s for s in said)


def _hang(*_: Any) -> Any:
    import time

    time.sleep(3)
    return True


@pytest.mark.parametrize("hook", ["admissible_grammar", "restyle"])
def test_every_hook_runs_under_its_tools_time_limit(hook: str) -> None:
    import time

    # Each hook that hung held the whole run (only the proposer had a limit).
    more: dict[str, Any] = {hook: _hang}
    if hook == "restyle":
        more["proposer"] = lambda text: [Proposal(49, ("42",), 0.9)]
    tool = make_tool(echo, "echo", cache=False, timeout=0.3, **more)
    began = time.perf_counter()
    _, summary, said = run(tool)
    assert time.perf_counter() - began < 2.5 and summary["tools"] == ["echo"]
    assert any(f"echo's {hook} raised ToolTimeoutError: echo's {hook}: timed out after 0.3 s" in s for s in said)


def test_a_sampled_calls_admissible_verdict_runs_under_the_time_limit() -> None:
    import time

    from toolcall.data_gen import sample

    # The toy model's samples never close a call, so the verdict is asked directly, as the sampler asks it.
    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sample._admissible("echo", _hang, ("x",), "before", 0.3) is False
    assert time.perf_counter() - began < 2.5
    assert any("echo's admissible raised ToolTimeoutError" in str(w.message) for w in caught)
