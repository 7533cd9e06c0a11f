"""The Solve tool (from MOSS): solves equations such as "2*x + 3 = 7" or "x^2 - 4 = 0, x" with sympy."""
from __future__ import annotations

import re
from typing import Any

import sympy
from sympy.polys.polyerrors import BasePolynomialError

from toolcall.errors import ToolError

from ._mathparse import CONSTANTS, MAX_INPUT, format_number, parse_items

MAX_EQUATIONS = 6
MAX_ANSWER = 1000   # characters of an answer: a general quartic's roots run to 13,816, more than a model can use

# An equation in these is solved over the real numbers, as a set: sin, cos and tan repeat, so sympy.solve's list
# (sin(x) = 0: "x = 0 or x = pi") is not all the solutions; |x|, floor, ceil, min and max are defined for real x
# (over the complex numbers |x| = 2 is a circle, and sympy.solve refused it).
_PERIODIC = (sympy.sin, sympy.cos, sympy.tan)
_REAL_ONLY = (sympy.Abs, sympy.floor, sympy.ceiling, sympy.Min, sympy.Max)


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


def _has_in(equation: Any, functions: tuple[Any, ...], unknown: Any) -> bool:
    """Whether one of `functions` is applied to something with `unknown` in it (sin(x), not sin(1))."""
    return any(call.has(unknown) for call in equation.atoms(*functions))


def _written(equation: Any) -> str:
    """An equation as the answer writes it: "floor(x) = 2"."""
    return f"{equation.lhs} = {equation.rhs}"


def solve(equation: str) -> str:
    """Solve an equation or a system of equations for its unknowns.

    An equation in sin, cos, tan, abs, floor, ceil, min or max is solved for a real unknown, and periodic
    solutions are written with an integer n ("x = pi*n + pi/4, for any integer n"); others are solved over the
    complex numbers. e and E are Euler's number and pi is π, unless named after the equations as an unknown
    ("E = m*c^2, E").

    Args:
        equation: One or more equations separated by commas, optionally followed by the variables to solve for, for example "x^2 - 4 = 0, x" or "x + y = 3, x - y = 1". An expression without "=" is set equal to zero.

    Returns:
        The solutions, like "x = 2" or "x = -2 or x = 2"; "No solution." when there provably is none ("No real
        solution." for a real unknown).
    """
    text = equation.strip().strip("\"'`")
    if not text:
        raise ToolError("empty equation; write one like 2*x + 3 = 7")
    # A constant's name (e, E, pi) named after the equations as what to solve for is that unknown throughout: "E = m*c^2,
    # E" read E as Euler's number and answered "No solution."
    # Only on text the parser will read (a longer one is refused there): the search is quadratic in a list of names.
    named = re.search(r"(?:,\s*[A-Za-z_]\w*\s*)+$", text) if len(text) <= MAX_INPUT else None
    listed = frozenset(re.findall(r"[A-Za-z_]\w*", named.group())) if named else frozenset()
    items = parse_items(text, symbols=True, variables=listed & CONSTANTS.keys())
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
    absent = [str(var) for var in unknowns if var not in free]
    if absent:
        # sympy answers [] for x^2 - 4 = 0 solved for y, which read as "No solution."
        raise ToolError(f"{', '.join(absent)} does not appear in the equations; their unknowns are "
                        f"{', '.join(map(str, free)) or 'none'}")
    unknowns = unknowns or free
    if not unknowns:
        raise ToolError(f"no variable to solve for in {text!r}")
    if len(equations) == 1 and len(unknowns) == 1 and _has_in(equations[0], _PERIODIC + _REAL_ONLY, unknowns[0]):
        answer = _solve_over_reals(equations[0], unknowns[0])
    else:
        answer = _solve(equations, unknowns, free)
    if len(answer) > MAX_ANSWER:
        raise ToolError(f"the solution is too long to write ({len(answer)} characters; limit {MAX_ANSWER}): "
                        f"give numbers for the other letters, or solve a simpler equation")
    return answer


def _solve(equations: list[Any], unknowns: list[Any], free: list[Any]) -> str:
    """The solutions sympy.solve finds, over the complex numbers."""
    shown = ", ".join(_written(e) for e in equations)
    try:
        if len(equations) == 1 and len(unknowns) == 1:
            # One equation: sympy gives the roots a polynomial has no radicals for (CRootOf) only in this form; in a
            # list it answers [] for x^5 - x + 1 = 0, which read as "No solution." though it has five.
            found = sympy.solve(equations[0], unknowns[0], dict=True)
        else:
            found = sympy.solve(equations, unknowns, dict=True)
    except (NotImplementedError, BasePolynomialError) as err:
        raise ToolError(f"cannot solve {shown}: no method is implemented for equations like these") from err
    if not found:
        if _none_is_proven(equations, unknowns, free):
            return "No solution."
        # sympy.solve also answers [] where its methods give out (systems of nonlinear equations): that proves nothing.
        raise ToolError(f"no solution found for {shown}: sympy found none, which does not prove there is none")
    answers = []
    for solution in found:
        parts = [f"{var} = {_show(solution[var])}" for var in unknowns if var in solution]
        answers.append(", ".join(parts) if parts else "any value")
    answer = " or ".join(answers)
    if any(_has_in(e, _PERIODIC, var) for e in equations for var in unknowns):
        # A system, or an equation with more than one unknown: sympy lists solutions from one period at most.
        answer += " (not necessarily all solutions: sin, cos and tan repeat)"
    return answer


def _none_is_proven(equations: list[Any], unknowns: list[Any], free: list[Any]) -> bool:
    """Whether sympy.solve's empty answer proves there is no solution: a linear system, or one equation whose
    numerator is a polynomial in its one unknown (sympy finds every root of those), or one equation that
    sympy.solveset finds no solution of; and no other letters whose values might make one."""
    if len(free) > len(unknowns):
        return False
    differences = [e.lhs - e.rhs for e in equations]
    if all(d.is_polynomial(*unknowns) and sympy.Poly(d, *unknowns).total_degree() <= 1 for d in differences):
        return True
    if len(equations) != 1:
        return False
    numerator = sympy.fraction(sympy.together(differences[0]))[0]
    if numerator.is_polynomial(unknowns[0]):
        return True
    try:
        return sympy.solveset(differences[0], unknowns[0], sympy.S.Complexes) is sympy.S.EmptySet
    except NotImplementedError:
        return False


def _solve_over_reals(equation: Any, unknown: Any) -> str:
    """The real solutions of one equation in one unknown, from sympy.solveset, with periodic families written
    with an integer n."""
    real = {s: sympy.Symbol(s.name, real=True) for s in equation.free_symbols}
    x = real[unknown]
    difference = (equation.lhs - equation.rhs).subs(real)
    try:
        found = sympy.solveset(difference, x, sympy.S.Reals)
    except (NotImplementedError, BasePolynomialError) as err:
        raise ToolError(f"cannot solve {_written(equation)}: no method is implemented for an equation like "
                        f"this") from err
    names = {s.name for s in real.values()}
    n = sympy.Symbol(next(name for name in ("n", "k", "m", "n_") if name not in names), integer=True)
    renderer = _SetWriter(x, n, _written(equation))
    parts = renderer.write(found)
    if not parts:
        return "No real solution."
    answer = " or ".join(parts)
    if renderer.periodic:
        answer += f", for any integer {n}"
    if renderer.conditions:
        answer += ", if " + " and ".join(renderer.conditions)
    return answer


class _SetWriter:
    """Writes a solution set of sympy.solveset as "x = ..." alternatives, noting whether any is a periodic family
    (an image of the integers) and the conditions on the other letters."""

    def __init__(self, x: Any, n: Any, shown: str) -> None:
        self.x, self.n, self.shown = x, n, shown
        self.periodic = False
        self.conditions: list[str] = []

    def write(self, found: Any) -> list[str]:
        x = self.x
        if found is sympy.S.EmptySet:
            return []
        if isinstance(found, sympy.FiniteSet):
            return [f"{x} = {_show(value)}" for value in found.args]
        if isinstance(found, sympy.Union):
            return [part for member in found.args for part in self.write(member)]
        if isinstance(found, sympy.ImageSet) and found.base_sets == (sympy.S.Integers,):
            self.periodic = True
            (variable,) = found.lamda.variables
            return [f"{x} = {found.lamda.expr.subs(variable, self.n)}"]
        if isinstance(found, sympy.Interval):
            lower = "" if found.start is sympy.S.NegativeInfinity else f"{found.start} {'<' if found.left_open else '<='} "
            upper = "" if found.end is sympy.S.Infinity else f" {'<' if found.right_open else '<='} {found.end}"
            return [f"{lower}{x}{upper}" if lower or upper else f"{x} any real number"]
        if isinstance(found, sympy.Intersection) and sympy.S.Reals in found.args and len(found.args) == 2:
            (rest,) = [a for a in found.args if a is not sympy.S.Reals]
            return self.write(rest)
        if isinstance(found, sympy.Complement) and isinstance(found.args[1], sympy.FiniteSet):
            kept = self.write(found.args[0])
            excluded = ", ".join(_show(v) for v in found.args[1].args)
            return [f"{part} (except {x} = {excluded})" for part in kept]
        if (isinstance(found, sympy.ConditionSet) and not found.condition.has(x)
                and not isinstance(found.base_set, sympy.ConditionSet)):
            # sin(x) = a: only where -1 <= a <= 1
            condition = found.condition
            self.conditions += map(str, condition.args if isinstance(condition, sympy.And) else (condition,))
            return self.write(found.base_set)
        # A ConditionSet on x itself (floor(x) = 2, sin(x) = x/2): solveset found no method.
        raise ToolError(f"cannot solve {self.shown}: no method is implemented for an equation like this")
