"""Exact sums of money columns on every database.

SQLite has no decimal type: a DecimalField is stored as a REAL and its SUM() is a float
(349 judgments at 0.60 summed to 209.399999999999). Each stored value is still the nearest float
to a number with at most `Judgment.cost`'s 4 decimal places, so rounding value × 10^4 to an
integer recovers it exactly; integers sum exactly in SQL (SQLite's 64-bit SUM, PostgreSQL's
numeric), and the total is turned back into a Decimal in Python. PostgreSQL gets the same SQL.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q, Sum, Value
from django.db.models.functions import Cast, Coalesce, Round

PLACES = 4  # Judgment.cost's decimal places; budgets and costs have no more
SCALE = 10**PLACES


class MoneyUnitsField(models.DecimalField):
    """Output field of `exact_sum`: the SQL yields an integer count of 10^-4 units."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", 30)
        kwargs.setdefault("decimal_places", PLACES)
        super().__init__(*args, **kwargs)

    def get_internal_type(self) -> str:
        return "BigIntegerField"

    def from_db_value(self, value, expression, connection):
        return None if value is None else Decimal(int(value)).scaleb(-PLACES)


def exact_sum(field: str, *, filter: Q | None = None) -> Coalesce:
    """An aggregate giving the exact Decimal sum of a money column (0 when there are no rows)."""
    units = Cast(
        Round(F(field) * Value(Decimal(SCALE), output_field=models.DecimalField())),
        output_field=models.BigIntegerField(),
    )
    return Coalesce(Sum(units, filter=filter), Value(0), output_field=MoneyUnitsField())
