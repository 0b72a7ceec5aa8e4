"""The library-backed Krippendorff's alpha gives the numbers of the hand-rolled one it replaced.

The previous implementation (coincidence matrix, Krippendorff 2011) is kept here as the reference,
so the switch to the `krippendorff` library is pinned to 1e-9 on arbitrary units.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from web.dashboard import krippendorff_alpha


def hand_rolled_alpha(units: Iterable[Sequence[float]], *, level: str = "ordinal") -> float | None:
    """Krippendorff's alpha of units, each the list of values its coders gave (missing left out).

    `level` is "nominal", "ordinal" or "interval". Units with fewer than two values are not
    pairable and are ignored. None when alpha is undefined (no pairable unit, or every value the
    same so no disagreement is expected). Follows Krippendorff (2011), "Computing Krippendorff's
    Alpha-Reliability": coincidence matrix, then 1 - (n-1) * sum o*d / sum n_c*n_k*d.
    """
    coincidences: dict[tuple[float, float], float] = defaultdict(float)
    for unit in units:
        values = list(unit)
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidences[(c, k)] += 1 / (m - 1)
    if not coincidences:
        return None
    totals: dict[float, float] = defaultdict(float)
    for (c, _), weight in coincidences.items():
        totals[c] += weight
    n = sum(totals.values())
    values = sorted(totals)

    if level == "nominal":

        def distance(c: float, k: float) -> float:
            return 0.0 if c == k else 1.0
    elif level == "interval":

        def distance(c: float, k: float) -> float:
            return (c - k) ** 2
    elif level == "ordinal":
        position = {v: i for i, v in enumerate(values)}

        def distance(c: float, k: float) -> float:
            lo, hi = sorted((position[c], position[k]))
            between = sum(totals[values[g]] for g in range(lo, hi + 1))
            return (between - (totals[c] + totals[k]) / 2) ** 2
    else:
        raise ValueError(f"unknown level {level!r}")

    observed = sum(w * distance(c, k) for (c, k), w in coincidences.items())
    expected = sum(totals[c] * totals[k] * distance(c, k) for c in values for k in values)
    if expected == 0:
        return None
    return 1 - (n - 1) * observed / expected


units = st.lists(st.lists(st.integers(0, 4), min_size=0, max_size=5), max_size=30)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@settings(max_examples=200, deadline=None)
@given(units=units)
def test_the_library_alpha_equals_the_hand_rolled_one(level, units):
    expected = hand_rolled_alpha(units, level=level)
    got = krippendorff_alpha(units, level=level)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, rel=0, abs=1e-9)


def test_an_unknown_level_is_refused():
    with pytest.raises(ValueError, match="unknown level"):
        krippendorff_alpha([[1, 2]], level="ratio-ish")
