"""A small whitelisting parser from model-written math text to sympy expressions (no eval/exec of model text)."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

import sympy
from sympy.core.evalf import PrecisionExhausted, get_integer_part

from toolcall.errors import ToolError

MAX_DIGITS = 1000        # an exact number with more digits than this is refused ("result too large")
MAX_FACTORIAL = 5000     # factorial(n) is only computed for n up to this
MAX_SYMBOL_POWER = 64    # x^n with a symbolic base: n up to this (keeps Solve's polynomials small)
MAX_INPUT = 500          # characters of expression text
MAX_DEPTH = 60           # nested parentheses / signs (keeps the recursive parser far from Python's limit)
MAX_NAME = 12            # characters of a variable name in Solve


class MathSyntaxError(ToolError):
    """The expression text is not something the parser accepts."""


@dataclass(frozen=True)
class Token:
    kind: str   # "num", "name", "op", "end"
    text: str
    pos: int
    value: Any = None
    raw: str = ""  # as written, where it differs from `text` (the letter x read as a times sign)


_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?![\d])(?:\.\d+)?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Inside the parentheses of a function that takes several arguments a comma separates them (max(3,500) is 500, not
# 3500), so a number there has no thousands separators.
_PLAIN_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_OPS = {"**": "^", "^": "^", "+": "+", "-": "-", "\u2212": "-", "\u2013": "-", "*": "*", "\u00d7": "*", "\u00b7": "*",
        "\u22c5": "*", "/": "/", "\u00f7": "/", "\u2215": "/", ":": "/", "%": "%", "(": "(", ")": ")", ",": ",",
        "!": "!", "==": "=", "=": "="}
_IGNORED = set("$\u20ac\u00a3 \t\n\r")

# name -> (sympy function building the value, allowed argument counts); None: built by a helper of its own
FUNCTIONS: dict[str, tuple[Callable[..., Any] | None, tuple[int, ...]]] = {
    "sqrt": (sympy.sqrt, (1,)), "cbrt": (lambda x: sympy.real_root(x, 3), (1,)), "exp": (sympy.exp, (1,)),
    "ln": (sympy.log, (1,)), "log": (None, (1, 2)), "log10": (lambda x: sympy.log(x, 10), (1,)),
    "log2": (lambda x: sympy.log(x, 2), (1,)),
    "sin": (sympy.sin, (1,)), "cos": (sympy.cos, (1,)), "tan": (sympy.tan, (1,)),
    "asin": (sympy.asin, (1,)), "acos": (sympy.acos, (1,)), "atan": (sympy.atan, (1,)),
    "sinh": (sympy.sinh, (1,)), "cosh": (sympy.cosh, (1,)), "tanh": (sympy.tanh, (1,)),
    "abs": (sympy.Abs, (1,)), "floor": (sympy.floor, (1,)), "ceil": (sympy.ceiling, (1,)), "ceiling": (sympy.ceiling, (1,)),
    "round": (None, (1, 2)), "factorial": (None, (1,)), "min": (sympy.Min, (1, 2, 3, 4, 5, 6, 7, 8)),
    "max": (sympy.Max, (1, 2, 3, 4, 5, 6, 7, 8)), "gcd": (sympy.gcd, (2,)), "lcm": (sympy.lcm, (2,)),
    "binomial": (sympy.binomial, (2,)), "comb": (sympy.binomial, (2,)),
}
# Functions whose evaluation gets arbitrarily slow (or huge) for arguments beyond 1e100.
_BOUNDED_ARGS = {"exp", "sin", "cos", "tan", "sinh", "cosh", "tanh", "binomial", "comb", "asin", "acos", "atan"}
CONSTANTS: dict[str, Any] = {"pi": sympy.pi, "e": sympy.E, "E": sympy.E}


def tokenize(text: str, times_x: bool) -> list[Token]:
    """Tokens of `text`; with times_x a standalone `x`/`X` means multiplication (Calculator), else a variable."""
    text = text.replace("\u03c0", "pi")
    tokens: list[Token] = []
    # One entry per open parenthesis: whether it opens the arguments of a function that takes several of them.
    arguments: list[bool] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _IGNORED:
            i += 1
            continue
        m = (_PLAIN_NUMBER if arguments and arguments[-1] else _NUMBER).match(text, i)
        if m:
            raw = m.group(0)
            literal = _HEX.match(text, i)
            if times_x and literal is not None:
                # Read as 0 times 10, "0x10" gave 0 where every programming language means 16.
                hexa = literal.group()
                shown, value = (repr(hexa), f" ({int(hexa[2:], 16)})") if len(hexa) <= 20 else (repr(hexa[:20]) + "...", "")
                raise MathSyntaxError(f"{shown} at position {i}: hexadecimal numbers are not read; write the number "
                                      f"in decimal{value}")
            exponent = re.search(r"[eE]([+-]?\d+)$", raw)
            if exponent is not None and abs(int(exponent.group(1))) > MAX_DIGITS:
                # Checked before sympy builds it: 1e99999999 would be written out exactly, for minutes.
                raise MathSyntaxError(f"number {raw!r} at position {i} is out of range (exponents up to {MAX_DIGITS})")
            try:
                value = sympy.Rational(raw.replace(",", ""))  # exact: 0.1 + 0.2 is 3/10, not 0.30000000000000004
            except (TypeError, ValueError) as err:
                raise MathSyntaxError(f"bad number {raw!r} at position {i}") from err
            if len(raw) > MAX_DIGITS:
                raise MathSyntaxError(f"number at position {i} is too long (more than {MAX_DIGITS} digits)")
            tokens.append(Token("num", raw, i, value))
            i = m.end()
            continue
        m = _NAME.match(text, i)
        if m:
            name = m.group(0)
            if times_x and name[0] in "xX" and (len(name) == 1 or name[1:].isdigit()):
                tokens.append(Token("op", "*", i, raw=name[0]))  # "3 x 4", "3x4": the letter x as a times sign
                i += 1
                continue
            tokens.append(Token("name", name, i))
            i = m.end()
            continue
        two = text[i:i + 2]
        if two in _OPS:
            tokens.append(Token("op", _OPS[two], i))
            i += 2
            continue
        if ch in _OPS:
            tokens.append(Token("op", _OPS[ch], i))
            if ch == "(":
                callee = tokens[-2] if len(tokens) > 1 else None
                arguments.append(callee is not None and callee.kind == "name" and callee.text in FUNCTIONS
                                 and max(FUNCTIONS[callee.text][1]) > 1)
            elif ch == ")" and arguments:
                arguments.pop()
            i += 1
            continue
        raise MathSyntaxError(f"unexpected character {ch!r} at position {i}; allowed: numbers, + - * / ^ % ( ), "
                              f"and the functions {', '.join(sorted(FUNCTIONS))}")
    tokens.append(Token("end", "", len(text)))
    return tokens


def _log10_abs(value: Any) -> float:
    """log10(|value|) for a sympy number, without overflowing floats on big exact numbers."""
    if value.is_Rational:
        p, q = abs(int(value.p)), int(value.q)
        return (math.log10(p) if p else -math.inf) - math.log10(q)
    number = sympy.Abs(sympy.N(value, 15))
    # In sympy's own floats: exp(710) is past a Python float (read as inf: "more than 1000 digits") and exp(-1000)
    # below one (read as 0, then int(-inf) raised OverflowError).
    return float(sympy.log(number, 10).evalf(15)) if number != 0 else -math.inf


def _digits(n: int) -> int:
    """About how many digits `n` has (within one), without writing it: str() refuses past 4,300 digits."""
    return int(abs(n).bit_length() * 0.30103) + 1


def check_size(value: Any) -> Any:
    """Refuse exact numbers too large to be a sensible tool result (and too slow to keep computing with)."""
    if isinstance(value, sympy.Rational) and max(_digits(int(value.p)), _digits(int(value.q))) > MAX_DIGITS:
        raise ToolError(f"result too large (more than {MAX_DIGITS} digits)")
    if value is sympy.zoo or value is sympy.nan or value in (sympy.oo, -sympy.oo):
        raise ToolError("division by zero or undefined result")
    return value


def safe_power(base: Any, exponent: Any) -> Any:
    """base ** exponent, refusing before computing it when the result would be astronomically large."""
    if base.free_symbols:
        if exponent.free_symbols or not exponent.is_number:
            raise ToolError("a variable's power must be a number (x^2 or x^(1/2), not x^x)")
        if abs(float(sympy.N(exponent))) > MAX_SYMBOL_POWER:
            raise ToolError(f"exponent too large: powers of a variable are limited to {MAX_SYMBOL_POWER}")
        return base ** exponent
    if exponent.is_number and not exponent.free_symbols and base not in (0, 1, -1):
        mag = abs(complex(sympy.N(exponent, 15)))
        if base.is_Rational:
            # Exact arithmetic writes out numerator and denominator: (1000001/1000000)^(10^6) is small but has
            # millions of digits, so the size that matters is that of the larger of the two.
            size = max(math.log10(abs(int(base.p))), math.log10(int(base.q)))
        else:
            size = abs(_log10_abs(base))
            if mag > 10 * MAX_DIGITS:
                raise ToolError(f"exponent too large: {exponent} (limit {10 * MAX_DIGITS} for this base)")
        if mag * size > MAX_DIGITS:
            raise ToolError(f"result too large: {base}^{exponent} has about {mag * size:.3g} digits "
                            f"(limit {MAX_DIGITS})")
    return check_size(base ** exponent)


def _check_binomial(n: Any, k: Any) -> None:
    """Refuse binomial(n, k) before sympy computes it when it would be too large or take a product of too many terms:
    binomial(10^99, 5*10^98) and binomial(1/2, 10^6) each ran to the Calculator's time limit. Whole numbers whose
    value is 0 (k < 0, or k > n >= 0) or small (binomial(-2, 6000) = 6001) are left to sympy."""
    if n.free_symbols or k.free_symbols or not (n.is_number and k.is_number):
        return
    if k.is_Integer and n.is_Integer:
        if k < 0 or 0 <= n < k:
            return
        # binomial(n, k) for a negative n is +-binomial(k - n - 1, k): the same count of digits.
        top, bottom = (int(n), int(k)) if n >= 0 else (int(k - n - 1), int(k))
        small = min(bottom, top - bottom)
        if small > MAX_FACTORIAL:
            # log10 of binomial(top, small), from the log-gamma function: how many digits it has, without computing it.
            digits = (math.lgamma(float(top) + 1) - math.lgamma(small + 1) - math.lgamma(float(top) - small + 1)) \
                / math.log(10)
            if digits > MAX_DIGITS:
                raise ToolError(f"result too large: this binomial has about {digits:.3g} digits (limit {MAX_DIGITS})")
        return
    if abs(float(sympy.N(k, 15))) > MAX_FACTORIAL:
        raise ToolError(f"binomial(n, k) with k above {MAX_FACTORIAL} is computed only for whole numbers n and k")


def _factorial(n: Any) -> Any:
    if not (n.is_Integer and n >= 0):
        raise ToolError(f"factorial needs a whole number >= 0, got {n}")
    if n > MAX_FACTORIAL:
        raise ToolError(f"factorial({n}) is too large (limit {MAX_FACTORIAL})")
    return check_size(sympy.factorial(n))


# Bits of working precision for an exact floor or ceiling: enough for every digit a result may have (MAX_DIGITS) and
# some to tell the value from the nearest integer. sympy's own limit (about 100 digits) left floor(10^999/pi)
# unevaluated, and printing it raised a bare PrecisionExhausted.
_INTEGER_PART_BITS = int((MAX_DIGITS + 60) * 3.33) + 64


def integer_part(x: Any, direction: int) -> Any:
    """floor(x) (direction -1) or ceiling(x) (direction 1), exact: a number with up to MAX_DIGITS digits is
    evaluated to as many digits as it takes; an expression with variables stays symbolic (Solve)."""
    build = sympy.floor if direction < 0 else sympy.ceiling
    if x.free_symbols or not x.is_number or x.is_Rational:
        return build(x)
    name = "floor" if direction < 0 else "ceil"
    if x.is_extended_real is False:
        raise ToolError(f"{name}() needs a real number, got {sympy.N(x, 6)}")
    if _log10_abs(x) >= MAX_DIGITS:
        raise ToolError(f"result too large (more than {MAX_DIGITS} digits)")
    try:
        real, imaginary = get_integer_part(x, direction, {"maxprec": _INTEGER_PART_BITS}, return_ints=True)
    except PrecisionExhausted as err:
        raise ToolError(f"{name}() of this value cannot be found exactly: it is too large, or too close to a whole "
                        f"number, to tell which whole numbers it lies between") from err
    if imaginary:
        raise ToolError(f"{name}() needs a real number, got {sympy.N(x, 6)}")
    return sympy.Integer(real)


def _round(x: Any, digits: Any = sympy.Integer(0)) -> Any:
    if not (digits.is_Integer and 0 <= digits <= 50):
        raise ToolError("round(x, n) needs a whole number n between 0 and 50")
    if x.free_symbols:
        raise ToolError("round() needs a number")
    if x.is_extended_real is False:
        raise ToolError(f"round() needs a real number, got {sympy.N(x, 6)}")
    # Half away from zero, on the exact value: y >= 1/2 rounds to floor(y + 1/2), anything less to ceiling(y - 1/2)
    # (0 for -1/2 < y < 1/2, and -1 at -1/2). Converting through a 60-digit Decimal first dropped every digit past
    # the 60th: round(2^200 + 0.5) was 2^200 + 4.
    scale = sympy.Integer(10) ** int(digits)
    scaled = check_size(x * scale)
    up = integer_part(scaled + sympy.Rational(1, 2), -1)
    whole = up if up >= 1 else integer_part(scaled - sympy.Rational(1, 2), 1)
    return sympy.Rational(whole, scale)


def _log(x: Any, base: Any = None) -> Any:
    if base is None:
        return sympy.log(x)
    if base.is_number and (base.is_positive is False or base == 1):
        # sympy divides by log(base): log(8, 0) is log(8)/zoo, which it writes as 0.
        raise ToolError(f"log(x, base) needs a positive base other than 1, got {base}")
    return sympy.log(x, base)


class Parser:
    """Precedence climbing over the tokens: sums, products (with implicit ones before "(" and names), powers, postfix % and !."""

    def __init__(self, text: str, *, symbols: bool, variables: frozenset[str] = frozenset()) -> None:
        if len(text) > MAX_INPUT:
            raise MathSyntaxError(f"expression too long ({len(text)} characters; limit {MAX_INPUT})")
        self.text = text
        self.symbols = symbols
        self.variables = variables  # names read as unknowns though they name a constant (E in "E = m*c^2, E")
        self.tokens = tokenize(text, times_x=not symbols)
        self.i = 0
        self.depth = 0

    # -- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _is(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def _fail(self, expected: str) -> MathSyntaxError:
        tok = self.tok
        found = "the end of the expression" if tok.kind == "end" else repr(tok.raw or tok.text)
        return MathSyntaxError(f"cannot parse {self.text!r}: found {found} at position {tok.pos}, expected {expected}")

    def _starts_operand(self, tok: Token) -> bool:
        return tok.kind in ("num", "name") or (tok.kind == "op" and tok.text == "(")

    # -- grammar
    def parse_items(self) -> list[tuple[Any, Any | None]]:
        """Comma-separated items, each `expr` or `expr = expr`."""
        items = []
        while True:
            left = self.expr()
            right = None
            if self._is("="):
                self._take()
                right = self.expr()
            items.append((left, right))
            if self._is(","):
                self._take()
                continue
            if self.tok.kind != "end":
                raise self._fail("an operator, ',' or the end")
            return items

    def expr(self) -> Any:
        value = self.term()
        while self._is("+") or self._is("-"):
            op = self._take().text
            rhs = self.term()
            value = check_size(value + rhs if op == "+" else value - rhs)
        return value

    def term(self) -> Any:
        value = self.unary()
        while True:
            if self._is("*") or self._is("/") or self._is("%"):
                op = self._take().text
                rhs = self.unary()
                if op == "*":
                    value = value * rhs
                elif rhs == 0:
                    raise ToolError("division by zero")
                elif op == "%" and rhs.is_number and not rhs.free_symbols and not rhs.is_Rational:
                    # sympy's Mod by a part equal to zero that it cannot see (log(8)/log(2) - 3) recursed to its limit.
                    rhs = _told_from_zero(rhs)[0]
                    if rhs == 0:
                        raise ToolError("division by zero")
                    value = sympy.Mod(value, rhs)
                else:
                    value = value / rhs if op == "/" else sympy.Mod(value, rhs)
            elif self.tok.kind == "name" or self._is("("):
                value = value * self.unary()  # implicit product: 2(3+4), 2pi, 3x
            else:
                return value
            value = check_size(value)

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise MathSyntaxError(f"expression nested too deeply (more than {MAX_DEPTH} levels)")

    def unary(self) -> Any:
        if self._is("-") or self._is("+"):
            sign = self._take().text
            self._deeper()
            value = self.unary()
            self.depth -= 1
            return -value if sign == "-" else value
        return self.power()

    def power(self) -> Any:
        base = self.postfix()
        if self._is("^"):
            self._take()
            self._deeper()
            exponent = self.unary()  # right-associative: 2^3^2 = 2^9; 2^-1 allowed
            self.depth -= 1
            return safe_power(base, exponent)
        return base

    def postfix(self) -> Any:
        value = self.primary()
        while True:
            if self._is("%") and not self._starts_operand(self.tokens[self.i + 1]):
                self._take()
                value = value / 100  # "11.4%" is a percentage; "10 % 3" (an operand follows) is modulo
            elif self._is("!"):
                self._take()
                value = _factorial(value)
            else:
                return value

    def primary(self) -> Any:
        tok = self.tok
        if tok.kind == "num":
            self._take()
            return tok.value
        if self._is("("):
            self._take()
            self._deeper()
            value = self.expr()
            self.depth -= 1
            if not self._is(")"):
                raise self._fail("')'")
            self._take()
            return value
        if tok.kind == "name":
            self._take()
            if tok.text in FUNCTIONS and self._is("("):
                return self._call(tok)
            if tok.text in CONSTANTS and not (self.symbols and tok.text in self.variables):
                return CONSTANTS[tok.text]
            if self.symbols and tok.text not in FUNCTIONS and len(tok.text) <= MAX_NAME and not tok.text.startswith("_"):
                return sympy.Symbol(tok.text)
            allowed = ", ".join(sorted(FUNCTIONS)) + ", and the constants " + ", ".join(sorted(CONSTANTS))
            raise MathSyntaxError(f"unknown name {tok.text!r} at position {tok.pos}; allowed: {allowed}")
        raise self._fail("a number, '(' or a function name")

    def _call(self, name: Token) -> Any:
        self._take()  # "("
        self._deeper()
        args = [self.expr()]
        while self._is(","):
            self._take()
            args.append(self.expr())
        self.depth -= 1
        if not self._is(")"):
            raise self._fail("')' closing " + name.text + "(")
        self._take()
        func, counts = FUNCTIONS[name.text]
        if len(args) not in counts:
            raise MathSyntaxError(f"{name.text}() takes {' or '.join(map(str, counts))} argument(s), got {len(args)}")
        if name.text == "factorial":
            return _factorial(args[0])
        if name.text == "round":
            return _round(*args)
        if name.text == "log":
            return check_size(_log(*args))
        if name.text in ("gcd", "lcm") and any(arg.free_symbols for arg in args):
            # sympy reads gcd(x, 4) as the gcd of two polynomials (1), not of integers: gcd(x, 4) = 2 had "no solution".
            raise ToolError(f"{name.text}() needs numbers, not unknowns: equations in {name.text}() are not solved")
        if name.text in ("floor", "ceil", "ceiling"):
            return check_size(integer_part(args[0], -1 if name.text == "floor" else 1))
        for arg in args:  # huge arguments make sin/log/... evaluation arbitrarily slow
            if name.text in _BOUNDED_ARGS and arg.is_number and not arg.free_symbols and _log10_abs(arg) > 100:
                raise ToolError(f"{name.text}() of a number this large is not computed")
        if name.text in ("binomial", "comb"):
            _check_binomial(*args)
        assert func is not None, name.text   # only factorial, round and log have none, and they returned above
        return check_size(func(*args))


def parse_items(text: str, *, symbols: bool, variables: frozenset[str] = frozenset()) -> list[tuple[Any, Any | None]]:
    """Parse comma-separated `expr` or `expr = expr` items into sympy expressions; with `symbols`, the names in
    `variables` are unknowns even where they name a constant."""
    return Parser(text, symbols=symbols, variables=variables).parse_items()


#: Digits of working precision within which a value must show digits other than zeros before it is simplified: past
#: what a result may have (sqrt(10^1998 + 1) - 10^999 is 5e-1000), where sympy's default of about 100 refused
#: sqrt(10^120 + 1) - 10^60.
_ZERO_TEST_DIGITS = 2 * MAX_DIGITS + 100


def _told_from_zero(value: Any) -> tuple[Any, Any]:
    """(value, its 15-digit float) when its digits can be told; evaluated loosely, a part equal to zero that sympy
    cannot see is (log(8)/log(2) - 3) read as a tiny number, and 10^-140 divided by it was a result of 15.24. Such a
    value is simplified once: zero is 0, a division by it undefined, and anything else a clear error."""
    try:
        return value, sympy.N(value, 15, strict=True, maxn=_ZERO_TEST_DIGITS)
    except PrecisionExhausted:
        simpler = sympy.simplify(value)
    check_size(simpler)  # zoo, nan: a division by a part equal to zero
    try:
        return simpler, sympy.N(simpler, 15, strict=True, maxn=_ZERO_TEST_DIGITS)
    except PrecisionExhausted:
        raise ToolError(f"the result cannot be told from zero: {value} (a part of it may be exactly 0)") from None


def format_number(value: Any, decimals: int = 2) -> str:
    """A real number as the paper's calculator shows it: rounded to `decimals` places, integers without ".0".

    Non-zero values that would round to 0 keep two significant digits instead (0.0042, not 0).
    """
    value = sympy.nsimplify(value) if isinstance(value, float) else value
    if value.is_Integer:
        return str(int(value))
    with localcontext() as ctx:
        if value.is_Rational:  # exact: p/q to as many digits as the integer part needs
            ctx.prec = len(str(abs(value.p))) + decimals + 10
            exact = Decimal(int(value.p)) / Decimal(int(value.q))
        else:
            value, probe = _told_from_zero(value)
            if value.is_Integer:
                return str(int(value))
            if not probe.is_real:
                if probe.is_number and sympy.im(probe) != 0:
                    raise ToolError(f"the result is not a real number ({sympy.N(value, 6)})")
                raise ToolError(f"the result is not a number: {value}")
            size = _log10_abs(probe) if probe != 0 else 0.0
            if size >= MAX_DIGITS:
                raise ToolError(f"result too large (more than {MAX_DIGITS} digits)")
            if size < -MAX_DIGITS:
                # exp(-10^50): a Decimal cannot hold its exponent (it raised InvalidOperation, read as "not finite").
                sign = "positive" if probe > 0 else "negative"
                raise ToolError(f"the result is a {sign} number too small to write: below 10^-{MAX_DIGITS} "
                                f"(about 10^{size:.6g})")
            digits = max(int(size), 0) + decimals + 15
            ctx.prec = digits + 5
            try:
                exact = Decimal(str(sympy.N(value, digits, strict=True, maxn=_ZERO_TEST_DIGITS + digits)))
            except PrecisionExhausted as err:
                raise ToolError(f"the result cannot be written to {digits} digits: {value}") from err
            except InvalidOperation as err:
                raise ToolError(f"the result is not a finite number: {value}") from err
        if exact != 0 and exact.adjusted() >= MAX_DIGITS:
            raise ToolError(f"result too large (more than {MAX_DIGITS} digits)")
        rounded = exact.quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)
        if rounded == 0 and exact != 0:
            rounded = Decimal(f"{exact:.2g}")
        text = format(rounded, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
