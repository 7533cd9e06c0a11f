"""toolcall's built-in tools, one module each: Calculator, Calendar, Solve, WikiSearch, Search, QA, MT."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolcall.tool_type import Tool

__all__ = ["builtin_tools"]


def builtin_tools() -> list[Tool]:
    """The built-in tools with their names, aliases, time limits and how they run.

    Each `example` is one call with its result in Toolformer's bracket form.
    Calculator and Solve run in a worker process that is killed on timeout, because a hostile sympy computation
    cannot be interrupted in a thread; the others run in threads (I/O or an in-process model). MT declares
    `setup`: it translates with the model the caller has loaded.
    """
    from toolcall.argument_grammar import arithmetic_grammar
    from toolcall.tool_type import make_tool

    from . import calculator, calendar, mt, qa, search, solve, wikisearch

    return [
        make_tool(calculator.calculator, "Calculator", aliases=("Calculate",), timeout=5.0, cache=True, isolated=True, joiner=",",
                  example="[Calculator(400 / 1400) -> 0.29]", argument_grammar=arithmetic_grammar(),
                  proposer=calculator.calculator_proposer, restyle=calculator.restyle,
                  admissible=calculator.calculator_admissible,
                  admissible_grammar=calculator.calculator_admissible_grammar),
        make_tool(calendar.calendar, "Calendar", timeout=2.0, cache=False, example="[Calendar() -> Today is Monday, January 30, 2023.]",
                  proposer=calendar.calendar_proposer),
        make_tool(solve.solve, "Solve", timeout=10.0, cache=True, isolated=True, example="[Solve(2*x + 3 = 7) -> x = 2]"),
        make_tool(wikisearch.wiki_search, "WikiSearch", timeout=30.0, cache=False,
                  example="[WikiSearch(Ghana flag red meaning) -> Flag of Ghana: The flag of Ghana has three horizontal stripes of red, gold and green...]"),
        make_tool(search.search, "Search", timeout=30.0, cache=True, example="[Search(Scranton Pennsylvania) -> Scranton is a city in northeastern Pennsylvania...]"),
        make_tool(qa.qa, "QA", timeout=30.0, cache=False,
                  example='[QA("Where was Joe Biden born?") -> He was born in Scranton, Pennsylvania, on November 20, 1942.]'),
        make_tool(mt.mt, "MT", timeout=180.0, cache=True, example='[MT(sûreté nucléaire) -> nuclear safety]', setup=mt.bound_to),
    ]
