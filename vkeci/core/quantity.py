"""Kubernetes resource quantities ("500m", "1.5Gi", "2e3") as exact numbers.

Quantities are parsed with ``Decimal`` so that "0.1" + "0.2" CPUs stays exact, as in the
apimachinery ``resource.Quantity`` type.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_PATTERN = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


class QuantityError(ValueError):
    """A string is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """Return the exact value of a Kubernetes quantity such as ``"250m"`` or ``"4Gi"``.

    Raises ``QuantityError`` with the expected form when ``value`` is not a quantity.
    """
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity; expected a number like 2, 500m or 4Gi")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    text = str(value).strip()
    match = _PATTERN.match(text)
    if not match:
        raise QuantityError(f"{value!r} is not a quantity; expected a number like 2, 500m or 4Gi")
    number, exponent, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise QuantityError(f"{value!r} is not a quantity") from exc
    if exponent:
        return base * (Decimal(10) ** int(exponent[1:]))
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    return base * _DECIMAL[suffix or ""]


def cpu_cores(value: str | int | float) -> Decimal:
    """CPU quantity in cores ("250m" -> 0.25)."""
    return parse_quantity(value)


def memory_gib(value: str | int | float) -> Decimal:
    """Memory quantity in GiB ("512Mi" -> 0.5), the unit ECI sizes memory in."""
    return parse_quantity(value) / Decimal(2**30)
