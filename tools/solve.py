"""The Solve tool (from MOSS): solves equations such as "2*x + 3 = 7" or "x^2 - 4 = 0, x" with sympy."""
from __future__ import annotations

from typing import Any

import sympy

from toolcall.errors import ToolError

from ._mathparse import format_number, parse_items

MAX_EQUATIONS = 6


def _show(value: Any) -> str:
    """Exact form when it is short and rational, else the exact form with a rounded decimal."""
    value = sympy.nsimplify(value) if isinstance(value, float) else value
    if value.free_symbols:
        return str(value)
    if value.is_Rational:
        return str(value)
    try:
        approx = format_number(value)
    except ToolError:
        return str(value)
    exact = str(value)
    return approx if len(exact) > 40 else f"{exact} ≈ {approx}"


def solve(equation: str) -> str:
    """Solve an equation or a system of equations for its unknowns.

    Args:
        equation: One or more equations separated by commas, optionally followed by the variables to solve for, for example "x^2 - 4 = 0, x" or "x + y = 3, x - y = 1". An expression without "=" is set equal to zero.

    Returns:
        The solutions, like "x = 2" or "x = -2 or x = 2"; "No solution." when there is none.
    """
    text = equation.strip().strip("\"'`")
    if not text:
        raise ToolError("empty equation; write one like 2*x + 3 = 7")
    items = parse_items(text, symbols=True)
    equations, unknowns = [], []
    for left, right in items:
        if right is None and isinstance(left, sympy.Symbol) and len(items) > 1:
            unknowns.append(left)  # a bare name after the equations says what to solve for
        else:
            equations.append(sympy.Eq(left, right if right is not None else 0))
    equations = [e for e in equations if e is not sympy.true]
    if any(e is sympy.false for e in equations):
        return "No solution."
    if not equations:
        raise ToolError(f"no equation to solve in {text!r}")
    if len(equations) > MAX_EQUATIONS:
        raise ToolError(f"too many equations ({len(equations)}; limit {MAX_EQUATIONS})")
    free = sorted(set().union(*(e.free_symbols for e in equations)), key=str)
    unknowns = unknowns or free
    if not unknowns:
        raise ToolError(f"no variable to solve for in {text!r}")
    found = sympy.solve(equations, unknowns, dict=True)
    if not found:
        return "No solution."
    answers = []
    for solution in found:
        parts = [f"{var} = {_show(solution[var])}" for var in unknowns if var in solution]
        answers.append(", ".join(parts) if parts else "any value")
    return " or ".join(answers)
