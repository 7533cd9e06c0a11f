"""The call runner: each distinct call once per text, results kept across texts only for cacheable tools."""
from __future__ import annotations

from toolcall.data_gen.config import ExecuteConfig
from toolcall.data_gen.execute import CallRunner, execute_calls
from toolcall.data_gen.records import Candidate, TextRecord

from toolcall.registry import ToolRegistry

runs: list[str] = []


def stamp(label: str) -> str:
    """Answer with how often it has run.

    Args:
        label: Any text.
    """
    runs.append(label)
    return f"{label} #{len(runs)}"


def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.add(stamp, "Fixed", cache=True)   # cacheable: the same arguments always give the same answer
    reg.add(stamp, "Clock", cache=False)  # like Calendar: the answer may change between calls
    return reg


def test_uncacheable_tools_run_again_for_every_text() -> None:
    runs.clear()
    runner = CallRunner(registry(), ExecuteConfig(workers=2))
    first = runner.run_many([("Clock", ["t"]), ("Clock", ["t"]), ("Fixed", ["f"])])
    assert first[0] is first[1] and len(runs) == 2          # within one text a distinct call runs once
    second = runner.run_many([("Clock", ["t"]), ("Fixed", ["f"])])
    assert len(runs) == 3 and runs.count("t") == 2          # the clock ran again, the fixed tool did not
    assert second[1] is first[2] and second[0].text != first[0].text


def test_execute_calls_attaches_results_and_drops_failures() -> None:
    runner = CallRunner(registry())
    rec = TextRecord("x", candidates=(Candidate("Fixed", ("a",), "[Fixed(a)]", 1, 0),
                                      Candidate("Nope", (), "[Nope()]", 2, 1)))
    out = execute_calls(rec, runner)
    assert [c.tool for c in out.candidates] == ["Fixed"] and str(out.candidates[0].result).startswith("a #")
    assert out.counts["Nope"] == {"executed": 1, "errors": 1}
    assert out.rejected[0]["stage"] == "execute" and "Nope" in out.rejected[0]["reason"]


def test_calls_run_in_the_context_of_their_text_on_the_runners_threads() -> None:
    from toolcall.tool_type import about_text, text_context

    def dated() -> str:
        """The date of the text the call is made for."""
        return str(text_context.get().get("date"))

    reg = ToolRegistry()
    reg.add(dated, "Dated", cache=False)
    runner = CallRunner(reg, ExecuteConfig(workers=3))
    with about_text({"date": "2025-03-04"}):
        first = runner.run_many([("Dated", [])])
    with about_text({"date": "1999-12-31"}):
        second = runner.run_many([("Dated", [])])
    assert [first[0].text, second[0].text, runner.run_many([("Dated", [])])[0].text] == ["2025-03-04", "1999-12-31", "None"]


def test_a_result_quoting_the_scorers_special_tokens_is_kept_as_text() -> None:
    runs.clear()
    runner = CallRunner(registry(), special_texts=("<|endoftext|>",))
    (result,) = runner.run_many([("Fixed", ["ends with <|endoftext|>"])])
    assert result.text.startswith("ends with <\u200b|endoftext|> #")
    assert CallRunner(registry()).run_many([("Fixed", ["<|endoftext|>"])])[0].text.startswith("<|endoftext|> #")


def test_the_pipeline_gives_the_runner_its_scorers_special_texts() -> None:
    from toolcall.data_gen.config import DataGenConfig
    from toolcall.data_gen.pipeline import Pipeline

    from toolcall.backends.fake import FakeBackend

    class Special(FakeBackend):
        def special_texts(self) -> tuple[str, ...]:
            return ("<|im_end|>",)

    assert Pipeline(Special(), registry(), DataGenConfig(tools=("Fixed",))).runner.special_texts == ("<|im_end|>",)
