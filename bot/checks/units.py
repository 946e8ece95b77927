"""Unit conversions as people ask them, computed exactly instead of by the model.

"convert 5 miles to km", "how many feet in 3 meters", "72 °F in C",
"10 kg in pounds": :func:`conversion` finds the amount and both units and
converts with exact factors (a mile is 1609.344 m by definition); anything
else gives None. Gallons, cups, pints, quarts and fluid ounces are US
measures unless "imperial" or "UK" says otherwise; KB, MB, GB are powers of
1000 and KiB, MiB, GiB powers of 1024.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from confab.bot.checks.arithmetic import format_number

__all__ = ["Conversion", "conversion"]


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit: its dimension, its size in the dimension's base unit, and how it is named."""

    dimension: str
    factor: Fraction
    singular: str
    plural: str
    offset: Fraction = Fraction(0)  # for temperatures: base = (value + offset) * factor


def _u(dimension: str, factor: str, singular: str, plural: str = "", offset: str = "0") -> Unit:
    return Unit(dimension, Fraction(factor), singular, plural or singular + "s", Fraction(offset))


_US_GALLON = Fraction("3.785411784")
_UK_GALLON = Fraction("4.54609")
# Each unit with the names it goes by (lowercase; spaces allowed).
_UNITS: list[tuple[Unit, tuple[str, ...]]] = [
    (_u("length", "1", "metre"), ("m", "meter", "meters", "metre", "metres")),
    (_u("length", "1000", "kilometre"), ("km", "kms", "kilometer", "kilometers", "kilometre",
                                         "kilometres")),
    (_u("length", "0.01", "centimetre"), ("cm", "centimeter", "centimeters", "centimetre",
                                          "centimetres")),
    (_u("length", "0.001", "millimetre"), ("mm", "millimeter", "millimeters", "millimetre",
                                           "millimetres")),
    (_u("length", "1609.344", "mile"), ("mi", "mile", "miles")),
    (_u("length", "0.3048", "foot", "feet"), ("ft", "foot", "feet")),
    (_u("length", "0.0254", "inch", "inches"), ("inch", "inches")),
    (_u("length", "0.9144", "yard"), ("yd", "yds", "yard", "yards")),
    (_u("length", "1852", "nautical mile"), ("nmi", "nautical mile", "nautical miles")),
    (_u("mass", "1", "kilogram"), ("kg", "kgs", "kilo", "kilos", "kilogram", "kilograms")),
    (_u("mass", "0.001", "gram"), ("g", "gram", "grams", "gramme", "grammes")),
    (_u("mass", "0.000001", "milligram"), ("mg", "milligram", "milligrams")),
    (_u("mass", "0.45359237", "pound"), ("lb", "lbs", "pound", "pounds")),
    (_u("mass", "0.028349523125", "ounce"), ("oz", "ounce", "ounces")),
    (_u("mass", "6.35029318", "stone", "stone"), ("st", "stone", "stones")),
    (_u("mass", "1000", "tonne"), ("t", "tonne", "tonnes", "metric ton", "metric tons")),
    (_u("volume", "1", "litre"), ("l", "liter", "liters", "litre", "litres")),
    (_u("volume", "0.001", "millilitre"), ("ml", "milliliter", "milliliters", "millilitre",
                                           "millilitres")),
    (Unit("volume", _US_GALLON, "US gallon", "US gallons"), ("gal", "gallon", "gallons",
                                                              "us gallon", "us gallons")),
    (Unit("volume", _UK_GALLON, "imperial gallon", "imperial gallons"),
     ("imperial gallon", "imperial gallons", "uk gallon", "uk gallons")),
    (Unit("volume", _US_GALLON / 4, "US quart", "US quarts"), ("qt", "quart", "quarts")),
    (Unit("volume", _US_GALLON / 8, "US pint", "US pints"), ("pt", "pint", "pints")),
    (Unit("volume", _US_GALLON / 16, "US cup", "US cups"), ("cup", "cups")),
    (Unit("volume", _US_GALLON / 128, "US fluid ounce", "US fluid ounces"),
     ("fl oz", "fluid ounce", "fluid ounces")),
    (_u("time", "0.001", "millisecond"), ("ms", "millisecond", "milliseconds")),
    (_u("time", "1", "second"), ("s", "sec", "secs", "second", "seconds")),
    (_u("time", "60", "minute"), ("min", "mins", "minute", "minutes")),
    (_u("time", "3600", "hour"), ("h", "hr", "hrs", "hour", "hours")),
    (_u("time", "86400", "day"), ("day", "days")),
    (_u("time", "604800", "week"), ("week", "weeks", "wk", "wks")),
    (_u("temperature", "1", "°C", "°C", "273.15"), ("c", "°c", "celsius", "centigrade",
                                                      "degrees c", "degrees celsius")),
    (Unit("temperature", Fraction(5, 9), "°F", "°F", Fraction("459.67")),
     ("f", "°f", "fahrenheit", "degrees f", "degrees fahrenheit")),
    (_u("temperature", "1", "K", "K"), ("k", "kelvin", "kelvins")),
    (_u("data", "1", "byte"), ("b", "byte", "bytes")),
    (_u("data", "0.125", "bit"), ("bit", "bits")),
    (_u("data", "1000", "kB", "kB"), ("kb", "kilobyte", "kilobytes")),
    (_u("data", "1000000", "MB", "MB"), ("mb", "megabyte", "megabytes")),
    (_u("data", "1000000000", "GB", "GB"), ("gb", "gigabyte", "gigabytes")),
    (_u("data", "1000000000000", "TB", "TB"), ("tb", "terabyte", "terabytes")),
    (_u("data", "1024", "KiB", "KiB"), ("kib", "kibibyte", "kibibytes")),
    (_u("data", str(1024**2), "MiB", "MiB"), ("mib", "mebibyte", "mebibytes")),
    (_u("data", str(1024**3), "GiB", "GiB"), ("gib", "gibibyte", "gibibytes")),
    (_u("data", str(1024**4), "TiB", "TiB"), ("tib", "tebibyte", "tebibytes")),
    (_u("speed", "1", "m/s", "m/s"), ("m/s", "meters per second", "metres per second")),
    (Unit("speed", Fraction(1000, 3600), "km/h", "km/h"),
     ("km/h", "kmh", "kph", "kilometers per hour", "kilometres per hour")),
    (Unit("speed", Fraction("1609.344") / 3600, "mph", "mph"), ("mph", "miles per hour")),
    (Unit("speed", Fraction(1852, 3600), "knot", "knots"), ("knot", "knots", "kn", "kt")),
]  # fmt: skip
_BY_NAME = {name: unit for unit, names in _UNITS for name in names}
_NAMES = "|".join(sorted((re.escape(name) for name in _BY_NAME), key=len, reverse=True))
_UNIT = rf"(?:degrees?\s+)?(?P<{{}}>{_NAMES})"
_AMOUNT = r"(?P<amount>[-+]?\d[\d,]*(?:\.\d+)?|\.\d+)"
_END = r"(?![\w/°])"
_PATTERNS = [
    # "how many feet (are there) in 3 meters", "how many km is 5 miles"
    re.compile(
        rf"^how many\s+{_UNIT.format('to')}{_END}\s+(?:are\s+|is\s+)?(?:there\s+)?"
        rf"(?:in|is|are|make|makes|equals?)\s+(?:a\s+)?{_AMOUNT}\s*{_UNIT.format('source')}{_END}$",
        re.IGNORECASE,
    ),
    # "convert 5 miles to km", "5 miles in km", "what is 72 °F in celsius"
    re.compile(
        rf"^(?:convert\s+|change\s+|turn\s+)?{_AMOUNT}\s*{_UNIT.format('source')}{_END}\s*"
        rf"(?:to|in|into|as|=|->|→|in terms of|is how many|equals? how many|is what in)\s+"
        rf"{_UNIT.format('to')}{_END}$",
        re.IGNORECASE,
    ),
]
_LEAD = re.compile(
    r"^(?:(?:hey|hi|ok|okay|please|pls)[,!]?\s+)*(?:(?:can|could) you\s+(?:please\s+)?"
    r"(?:tell me\s+)?|what(?:'s|’s| is| are)?\s+|how much is\s+|tell me\s+)?",
    re.IGNORECASE,
)
_TAIL = re.compile(
    r"(?:,?\s*(?:using|in|with)\s+(?:the\s+)?(?:decimal|binary|si|metric|us|imperial)"
    r"(?:\s*\(\w+\))?\s+(?:units?|prefixes|system|measures?))?"
    r"[\s?.!]*(?:please|pls|thanks)?[\s?.!]*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Conversion:
    """An amount in one unit converted to another, with the sentence answering it."""

    amount: Fraction
    source: Unit
    target: Unit
    value: Fraction

    @property
    def answer(self) -> str:
        exact = _is_short_decimal(self.value)
        sign = "=" if exact else "≈"
        return (
            f"{_amount(self.amount, self.source)} {sign} "
            f"**{_amount(self.value, self.target, rounded=not exact)}**"
        )


def conversion(text: str) -> Conversion | None:
    """The conversion ``text`` asks for, computed; None when it asks something else."""
    text = " ".join(text.split())
    if len(text) > 200 or not any(character.isdigit() for character in text):
        return None
    text = _TAIL.sub("", _LEAD.sub("", text, count=1))
    for pattern in _PATTERNS:
        found = pattern.match(text)
        if found is None:
            continue
        source, target = _BY_NAME[found["source"].lower()], _BY_NAME[found["to"].lower()]
        if source.dimension != target.dimension or source == target:
            return None
        amount = Fraction(found["amount"].replace(",", ""))
        base = (amount + source.offset) * source.factor
        return Conversion(amount, source, target, base / target.factor - target.offset)
    return None


def _is_short_decimal(value: Fraction) -> bool:
    shown = format_number(value)
    return "e" not in shown and Fraction(shown) == value


def _amount(value: Fraction, unit: Unit, *, rounded: bool = False) -> str:
    number = format_number(float(value) if rounded else value)
    if rounded:  # six significant digits are plenty for a conversion
        number = format_number(float(f"{float(value):.6g}"))
    name = unit.singular if value == 1 else unit.plural
    joiner = "" if name.startswith("°") else " "
    return f"{number}{joiner}{name}"
