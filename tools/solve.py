"""The Solve tool (from MOSS): solves equations such as "2*x + 3 = 7" or "x^2 - 4 = 0, x" with sympy."""
from __future__ import annotations

from typing import Any

import sympy

from toolcall.errors import ToolError

from ._mathparse import format_number, parse_items

MAX_EQUATIONS = 6


def _complex_approximation(value: Any) -> str:
    """A complex number as `a + b*I`, each part rounded as the Calculator rounds."""
    z = complex(sympy.N(value, 15))
    sign = "-" if z.imag < 0 else "+"
    return f"{format_number(sympy.Float(z.real))} {sign} {format_number(sympy.Float(abs(z.imag)))}*I"


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
        if not (value.is_number and value.has(sympy.CRootOf)):
            return str(value)
        approx = _complex_approximation(value)  # a complex root a polynomial has no radicals for
    exact = str(value)
    if len(exact) > 40 or value.has(sympy.CRootOf):  # CRootOf(x**5 - x + 1, 0) says less than its value
        return approx
    return f"{exact} ≈ {approx}"


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
    if len(equations) == 1 and len(unknowns) == 1:
        # One equation: sympy gives the roots a polynomial has no radicals for (CRootOf) only in this form; in a
        # list it answers [] for x^5 - x + 1 = 0, which read as "No solution." though it has five.
        found = sympy.solve(equations[0], unknowns[0], dict=True)
    else:
        found = sympy.solve(equations, unknowns, dict=True)
    if not found:
        return "No solution."
    answers = []
    for solution in found:
        parts = [f"{var} = {_show(solution[var])}" for var in unknowns if var in solution]
        answers.append(", ".join(parts) if parts else "any value")
    return " or ".join(answers)
