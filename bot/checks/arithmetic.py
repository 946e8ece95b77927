"""Arithmetic as people type it in a chat, computed exactly instead of by the model.

A small model answers "17 + 25" with 32. :func:`calculation` recognises a
message that is only a calculation ("what is 9 × 7?", "15% of 240",
"(3 + 4) * 12", "2^10", "square root of 144") and computes it with exact
fractions; anything else gives None and goes to the model. The expression is
parsed with :mod:`ast` and only numbers, the four operations, ``//``, ``%``,
powers and ``sqrt`` are evaluated: nothing is ever passed to ``eval``.
Unit conversions are in :mod:`confab.bot.checks.units`.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Calculation", "calculation", "format_number"]

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 1000
MAX_RESULT_DIGITS = 400
SIGNIFICANT = 10

# What people put around a calculation; removed before parsing.
_LEAD = re.compile(
    r"^(?:(?:hey|hi|ok|okay|so|please|pls|quick question)[,!:]?\s+)*"
    r"(?:(?:can|could|would) you\s+(?:please\s+)?(?:tell me\s+|calculate\s+|compute\s+"
    r"|work out\s+|do\s+)?|tell me\s+|what(?:'s|’s| is| are|s)?\s+|how much(?:'s| is)?\s+"
    r"|calculate\s+|compute\s+|evaluate\s+|work out\s+|solve\s+)?"
    r"(?:the (?:value|result|answer) of\s+)?",
    re.IGNORECASE,
)
_TAIL = re.compile(r"(?:\s*(?:=|equals?|please|pls|thanks|thank you|exactly))*[\s?.!]*$")
_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d,])")
_PERCENT_OF = re.compile(r"([\d.]+)\s*(?:%|percent|per cent)\s+of\b", re.IGNORECASE)
_ROOT = re.compile(r"(?:the\s+)?(?:square\s+root|sqrt)\s*(?:of\s+)?(?=[\d(])", re.IGNORECASE)
_WORDS = [
    (re.compile(r"\bto the power of\b|\braised to(?: the power of)?\b", re.I), "**"),
    (re.compile(r"\bmultiplied by\b|\btimes\b", re.I), "*"),
    (re.compile(r"\bdivided by\b|\bover\b", re.I), "/"),
    (re.compile(r"\bplus\b|\badded to\b", re.I), "+"),
    (re.compile(r"\bminus\b", re.I), "-"),
    (re.compile(r"\bmod(?:ulo)?\b", re.I), "%"),
    (re.compile(r"\bsquared\b", re.I), "**2"),
    (re.compile(r"\bcubed\b", re.I), "**3"),
]
_SYMBOLS = str.maketrans(
    {"×": "*", "·": "*", "∙": "*", "⋅": "*", "÷": "/", "−": "-", "–": "-", "^": "**", "√": "√"}
)
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])")
_SUPERSCRIPT = {"²": "**2", "³": "**3"}
_ALLOWED = re.compile(r"^[\d.\s+\-*/%()√¶]+$")
_OPERATORS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "×",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "mod",
    ast.Pow: "^",
}


class CalculationError(ValueError):
    """An expression that cannot be computed (division by zero, a number too large)."""


@dataclass(frozen=True, slots=True)
class Calculation:
    """A computed expression: how it reads, its value, and the sentence answering it."""

    expression: str
    value: Fraction | float | None
    problem: str = ""

    @property
    def answer(self) -> str:
        """The reply: the expression and its value (exact, or rounded and said so)."""
        if self.value is None:
            return f"I can't compute {self.expression}: {self.problem}."
        shown = format_number(self.value)
        sign = "=" if _exact(self.value) else "≈"
        return f"{self.expression} {sign} **{shown}**"


def calculation(text: str) -> Calculation | None:
    """The calculation ``text`` asks for, computed; None when it is not only a calculation."""
    expression = _expression(text)
    if expression is None:
        return None
    try:
        tree = ast.parse(expression.replace("√", "sqrt").replace("¶", "pct"), mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return None
    if not _has_operation(tree.body):
        return None
    shown = _show(tree.body)
    try:
        return Calculation(shown, _evaluate(tree.body))
    except CalculationError as problem:
        return Calculation(shown, None, str(problem))
    except ValueError:  # a node outside the allowed grammar
        return None


def _expression(text: str) -> str | None:
    text = " ".join(text.split())
    if not text or len(text) > MAX_EXPRESSION_CHARS or not any(c.isdigit() for c in text):
        return None
    text = _TAIL.sub("", _LEAD.sub("", text, count=1))
    text = _THOUSANDS.sub(lambda found: found[0].replace(",", ""), text)
    text = text.translate(_SYMBOLS)
    for mark, power in _SUPERSCRIPT.items():
        text = text.replace(mark, power)
    text = _PERCENT_OF.sub(lambda found: f"¶({found[1]})*", text)
    text = re.sub(r"([\d.]+)\s*%(?!\s*[\d(])", r"¶(\1)", text)  # "50%" alone
    text = _ROOT.sub("√", text)
    for pattern, operator in _WORDS:
        text = pattern.sub(f" {operator} ", text)
    text = _TIMES_X.sub("*", text)
    if not _ALLOWED.match(text):
        return None
    # √ applies to the number or bracket right after it.
    text = re.sub(r"√\s*([\d.]+)", r"√(\1)", text)
    return text.strip()


def _has_operation(node: ast.expr) -> bool:
    return isinstance(node, ast.BinOp | ast.Call) or (
        isinstance(node, ast.UnaryOp) and _has_operation(node.operand)
    )


def _evaluate(node: ast.expr) -> Fraction | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ValueError("not a number")
        return Fraction(str(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _evaluate(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Call) and _is_call(node, "sqrt"):
        return _sqrt(_evaluate(node.args[0]))
    if isinstance(node, ast.Call) and _is_call(node, "pct"):
        return _evaluate(node.args[0]) / 100
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _binary(node.op, _evaluate(node.left), _evaluate(node.right))
    raise ValueError(f"{type(node).__name__} is not arithmetic")


def _is_call(node: ast.Call, name: str) -> bool:
    return (
        isinstance(node.func, ast.Name)
        and node.func.id == name
        and len(node.args) == 1
        and not node.keywords
    )


def _binary(op: ast.operator, left: Fraction | float, right: Fraction | float) -> Fraction | float:
    if isinstance(op, ast.Add):
        return left + right
    if isinstance(op, ast.Sub):
        return left - right
    if isinstance(op, ast.Mult):
        return _bounded(left * right)
    if isinstance(op, ast.Pow):
        return _power(left, right)
    if right == 0:
        raise CalculationError("division by zero is undefined")
    if isinstance(op, ast.Div):
        return left / right
    if isinstance(op, ast.FloorDiv):
        return Fraction(math.floor(left / right))
    return left - right * math.floor(left / right)  # Mod, with Python's sign rule


def _power(base: Fraction | float, exponent: Fraction | float) -> Fraction | float:
    if isinstance(exponent, Fraction) and exponent.denominator == 1:
        if abs(exponent) > MAX_EXPONENT:
            raise CalculationError("the exponent is too large for me to compute exactly")
        if base == 0 and exponent < 0:
            raise CalculationError("zero has no negative powers")
        if isinstance(base, Fraction):
            size = max(abs(base.numerator), base.denominator).bit_length()
            if size * abs(exponent) > MAX_RESULT_DIGITS * 3.33:
                raise CalculationError("the result is too large to show")
        return _bounded(base ** int(exponent))
    if base < 0:
        raise CalculationError("a negative number has no real fractional power")
    try:
        return math.pow(float(base), float(exponent))
    except OverflowError:
        raise CalculationError("the result is too large to show") from None


def _sqrt(value: Fraction | float) -> Fraction | float:
    if value < 0:
        raise CalculationError("a negative number has no real square root")
    if isinstance(value, Fraction):
        top, bottom = math.isqrt(value.numerator), math.isqrt(value.denominator)
        if top * top == value.numerator and bottom * bottom == value.denominator:
            return Fraction(top, bottom)
    return math.sqrt(value)


def _bounded(value: Fraction | float) -> Fraction | float:
    if isinstance(value, Fraction) and len(str(abs(value.numerator))) > MAX_RESULT_DIGITS:
        raise CalculationError("the result is too large to show")
    return value


def _exact(value: Fraction | float) -> bool:
    if isinstance(value, float):
        return False
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    return denominator == 1 and len(format_number(value).replace(".", "")) <= 30


def format_number(value: Fraction | float) -> str:
    """``value`` in plain decimal digits: exact when it is a short decimal, else rounded
    to ten significant digits, without trailing zeros."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return str(value.numerator)
    if isinstance(value, Fraction):
        for places in range(1, 21):  # an exact short decimal: 12.5, 0.125
            scaled = value * 10**places
            if scaled.denominator == 1:
                return _trim(f"{float(value):.{places}f}" if places < 15 else _long(value, places))
    number = float(value)
    if number == 0:
        return "0"
    if abs(number) >= 1e15 or abs(number) < 1e-6:
        return f"{number:.{SIGNIFICANT - 1}e}"
    places = max(0, SIGNIFICANT - 1 - math.floor(math.log10(abs(number))))
    return _trim(f"{number:.{places}f}")


def _long(value: Fraction, places: int) -> str:
    scaled = value.numerator * 10**places // value.denominator
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled)).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _show(node: ast.expr) -> str:
    """The expression as a person reads it: ``9 × 7``, ``√144``, ``2^10``."""
    if isinstance(node, ast.Constant):
        return format_number(Fraction(str(node.value)))
    if isinstance(node, ast.UnaryOp):
        return ("-" if isinstance(node.op, ast.USub) else "+") + _show(node.operand)
    if isinstance(node, ast.Call):
        inner = _show(node.args[0])
        if _is_call(node, "pct"):
            return f"{inner}%"
        return f"√{inner}" if isinstance(node.args[0], ast.Constant) else f"√({inner})"
    assert isinstance(node, ast.BinOp)
    left, right = _show(node.left), _show(node.right)
    percent = isinstance(node.left, ast.Call) and _is_call(node.left, "pct")
    if isinstance(node.op, ast.Mult) and percent:
        return f"{left} of {right}"
    if isinstance(node.left, ast.BinOp) and _binds_looser(node.left.op, node.op):
        left = f"({left})"
    if isinstance(node.right, ast.BinOp) and not _binds_tighter(node.right.op, node.op):
        right = f"({right})"
    return f"{left} {_OPERATORS[type(node.op)]} {right}"


_PRECEDENCE = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.FloorDiv: 2, ast.Mod: 2}


def _binds_looser(inner: ast.operator, outer: ast.operator) -> bool:
    return _PRECEDENCE.get(type(inner), 3) < _PRECEDENCE.get(type(outer), 3)


def _binds_tighter(inner: ast.operator, outer: ast.operator) -> bool:
    return _PRECEDENCE.get(type(inner), 3) > _PRECEDENCE.get(type(outer), 3)
