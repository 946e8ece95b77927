"""Arithmetic and unit conversions are computed exactly, never by the model."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confab.bot.checks.arithmetic import calculation, format_number
from confab.bot.checks.units import conversion


@pytest.mark.parametrize(
    ("asked", "answer"),
    [
        ("17 + 25", "17 + 25 = **42**"),
        ("What is 17 + 25?", "17 + 25 = **42**"),
        ("what is 9 × 7?", "9 × 7 = **63**"),
        ("9 x 7", "9 × 7 = **63**"),
        ("how much is 15% of 240", "15% of 240 = **36**"),
        ("(3 + 4) * 12", "(3 + 4) × 12 = **84**"),
        ("2^10", "2 ^ 10 = **1024**"),
        ("1234 * 5678", "1234 × 5678 = **7006652**"),
        ("100 / 8", "100 / 8 = **12.5**"),
        ("0.1 + 0.2", "0.1 + 0.2 = **0.3**"),  # exact, not 0.30000000000000004
        ("1/3", "1 / 3 ≈ **0.3333333333**"),
        ("square root of 144", "√144 = **12**"),
        ("sqrt of 2", "√2 ≈ **1.414213562**"),
        ("what is 5 plus 3 times 2?", "5 + 3 × 2 = **11**"),
        ("What is 12 squared?", "12 ^ 2 = **144**"),
        ("1,234 + 1", "1234 + 1 = **1235**"),
        ("7 mod 3", "7 mod 3 = **1**"),
        ("2 - (3 - 1)", "2 - (3 - 1) = **0**"),
        ("-5 + 3", "-5 + 3 = **-2**"),
    ],
)
def test_calculations_are_answered_with_their_exact_value(asked: str, answer: str) -> None:
    found = calculation(asked)
    assert found is not None
    assert found.answer == answer


@pytest.mark.parametrize(
    ("asked", "problem"),
    [
        ("10 / 0", "division by zero is undefined"),
        ("2 ** 100000", "the exponent is too large"),
        ("sqrt(-4)", "a negative number has no real square root"),
        ("(-8) ** 0.5", "no real fractional power"),
        ("9 ** 9 ** 9", "too large"),
    ],
)
def test_impossible_calculations_are_refused_in_a_sentence(asked: str, problem: str) -> None:
    found = calculation(asked)
    assert found is not None and found.value is None
    assert found.answer.startswith("I can't compute ")
    assert problem in found.answer


@pytest.mark.parametrize(
    "asked",
    [
        "what is the capital of France?",
        "2024",
        "is 7 prime?",
        "what is 2+2 and why",
        "my name is Ada and I am 36",
        "__import__('os').system('ls')",
        "(1).__class__",
        "print(1 + 1)",
        "lambda: 1",
        "[1, 2] * 3",
    ],
)
def test_anything_but_a_calculation_goes_to_the_model(asked: str) -> None:
    assert calculation(asked) is None


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6))
def test_sums_and_products_of_any_integers_are_exact(a: int, b: int) -> None:
    total = calculation(f"{a} + {b}")
    product = calculation(f"{a} * {b}")
    assert total is not None and total.value == a + b
    assert product is not None and product.value == a * b


def test_numbers_are_shown_in_plain_digits() -> None:
    assert format_number(Fraction(5, 2)) == "2.5"
    assert format_number(Fraction(10**20)) == "100000000000000000000"
    assert format_number(2 / 3) == "0.6666666667"


@pytest.mark.parametrize(
    ("asked", "answer"),
    [
        ("convert 5 miles to km", "5 miles = **8.04672 kilometres**"),
        ("how many feet in 3 meters", "3 metres ≈ **9.84252 feet**"),
        ("72 F in C", "72°F ≈ **22.2222°C**"),
        ("what is 72 °F to °C?", "72°F ≈ **22.2222°C**"),
        ("0 c to f", "0°C = **32°F**"),
        ("10 kg in pounds", "10 kilograms ≈ **22.0462 pounds**"),
        ("How many minutes are there in 2.5 hours?", "2.5 hours = **150 minutes**"),
        ("1 GB in MB", "1 GB = **1000 MB**"),
        ("1 GiB in MiB", "1 GiB = **1024 MiB**"),
        ("How many MB are in 1.5 GB, using decimal (SI) units?", "1.5 GB = **1500 MB**"),
        ("how many ounces in 2 pounds", "2 pounds = **32 ounces**"),
        ("3 litres to US gallons", "3 litres ≈ **0.792516 US gallons**"),
        ("What is 100 km/h in mph?", "100 km/h ≈ **62.1371 mph**"),
        ("how many centimeters are in 2 inches?", "2 inches = **5.08 centimetres**"),
    ],
)
def test_conversions_state_the_converted_amount(asked: str, answer: str) -> None:
    found = conversion(asked)
    assert found is not None
    assert found.answer == answer


@pytest.mark.parametrize(
    "asked",
    ["5 miles", "convert 5 miles to kg", "how far is 5 miles to the shop", "what is a mile?"],
)
def test_a_conversion_needs_an_amount_and_two_units_of_one_kind(asked: str) -> None:
    assert conversion(asked) is None
