"""Small-cell suppression: no count below k leaves the server, nor can be worked out.

A *cell* is a count of studies, reports, referrals or decisions — each one a
patient's event. A cell with 1 ≤ value < k (``Region.min_cell_size``) is
*primary*-suppressed: it goes out as the marker ``"<k"`` (in the JSON, the
page and the exports alike). Zero is shown: it says nothing about anyone.

Every breakdown in one view (by institution, by modality, by period, by
link) is published together with its total, so one hidden cell would be the
total minus the others. The choice made here is *complementary suppression*
per line, never rounding (the bureau wants exact totals):

- if a line has any primary-suppressed cell, its smallest cell ≥ k is hidden
  as well. That cell has no upper bound, so "total minus the shown cells" is
  the sum of two or more unknowns of which one is unbounded: no single value
  follows, and the hidden sum is ≥ k;
- if the line has no such cell (every non-zero cell is below k), the line's
  total is hidden too.

A view never shows a cross-table (a breakdown by two dimensions with both
margins); trends are single series over periods, flows a single list of
links. Figures derived from a cell — a mean, a rate, a money sum — are shown
only when their count is shown and at least k; a rate also needs its
complement (the events it does not count) to be 0 or ≥ k, or the rate and
the count would give the small number away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Value = int | float | str | None


@dataclass(frozen=True)
class Suppressor:
    k: int

    @property
    def marker(self) -> str:
        return f"<{self.k}"

    def small(self, value: float) -> bool:
        return 0 < value < self.k

    def cell(self, value: int) -> int | str:
        """Return a lone count (no breakdown published with it)."""
        return self.marker if self.small(value) else value

    def line(self, values: Sequence[int]) -> tuple[list[int | str], bool]:
        """Return ``(shown, total_hidden)`` for one breakdown published with its total."""
        hidden = {i for i, v in enumerate(values) if self.small(v)}
        total_hidden = False
        if hidden:
            large = [(v, i) for i, v in enumerate(values) if v >= self.k]
            if large:
                hidden.add(min(large)[1])
            else:
                total_hidden = True
        if self.small(sum(values)):
            total_hidden = True
        shown: list[int | str] = [self.marker if i in hidden else v for i, v in enumerate(values)]
        return shown, total_hidden

    def total(self, value: int, hidden: bool = False) -> int | str:
        return self.marker if hidden or self.small(value) else value

    def mean(self, total: float, count: int, *, shown: Any = True, digits: int = 1) -> Value:
        """Return ``total / count`` if the count is shown and at least k, else None."""
        if not isinstance(shown, int | float) and shown is not True:
            return None
        if count < self.k or count <= 0:
            return None
        return round(total / count, digits)

    def rate(self, part: int, whole: int, *, shown: Any = True) -> Value:
        """Return ``part / whole`` in percent when neither it nor its complement is small."""
        if not isinstance(shown, int | float) and shown is not True:
            return None
        if whole < self.k or self.small(part) or self.small(whole - part):
            return None
        return round(100.0 * part / whole, 1)


def is_shown(value: Any) -> bool:
    """Return whether a published cell carries a number (not the marker)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
