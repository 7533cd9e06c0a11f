"""The Calculator tool (MOSS calls it Calculate): arithmetic written by a model, parsed by a whitelist, rounded like the paper."""
from __future__ import annotations

import re

from toolcall.errors import ToolError

from ._mathparse import format_number, parse_items

# Trailing text models add after an expression: "27 + 4 * 2 =", "what is 3*4?".
_TRAILING = re.compile(r"[\s=?]+$")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the result rounded to two decimals.

    Accepts + - * / ^ (or **), parentheses, percentages like 11.4%, thousands separators like 658,893,
    x, × and ÷ as operators, and functions such as sqrt, log, sin and factorial.

    Args:
        expression: The arithmetic expression to evaluate, for example "400 / 1400".

    Returns:
        The value, rounded to two decimal places, without ".0" for whole numbers.
    """
    text = _TRAILING.sub("", expression.strip().strip("\"'`"))
    if not text:
        raise ToolError("empty expression; write one like 27 + 4 * 2")
    items = parse_items(text, symbols=False)
    if len(items) != 1 or items[0][1] is not None:
        raise ToolError(f"expected one expression without '=' or ',' (a number like 1,234 needs groups of three digits), got {text!r}")
    return format_number(items[0][0])
