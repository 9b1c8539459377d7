"""Figures: samples per repetition, summarised as a median and a spread over repetitions."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) of `samples`, linearly interpolated."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Figure:
    """One reported number: its value in each repetition, a unit, and an optional target."""

    scenario: str
    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    target: str = ""  # e.g. "≤ 1.5×", shown as is
    # How the median meets the target: None when the figure has none.
    check: tuple[str, float] | None = None  # ("<=" | ">=", bound)
    note: str = ""
    # Met only if every repetition's value meets it, not only the median (e.g. "0 failed").
    every: bool = False

    def add(self, value: float) -> None:
        self.values.append(float(value))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.values), max(self.values)

    @property
    def met(self) -> bool | None:
        if self.check is None or not self.values:
            return None
        operator, bound = self.check
        judged = self.values if self.every else [self.median]
        return all(v <= bound if operator == "<=" else v >= bound for v in judged)

    def as_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "name": self.name,
            "unit": self.unit,
            "values": self.values,
            "median": self.median if self.values else None,
            "min": self.spread[0] if self.values else None,
            "max": self.spread[1] if self.values else None,
            "target": self.target,
            "met": self.met,
            "note": self.note,
        }


class Figures:
    """The figures of one harness run, in the order they were first reported."""

    def __init__(self) -> None:
        self._figures: dict[tuple[str, str], Figure] = {}

    def add(
        self,
        scenario: str,
        name: str,
        unit: str,
        value: float,
        *,
        target: str = "",
        check: tuple[str, float] | None = None,
        note: str = "",
        every: bool = False,
    ) -> None:
        """Record one repetition's value of a figure (made on its first value)."""
        key = (scenario, name)
        if key not in self._figures:
            self._figures[key] = Figure(
                scenario, name, unit, target=target, check=check, note=note, every=every
            )
        self._figures[key].add(value)

    def __iter__(self) -> Iterator[Figure]:
        return iter(self._figures.values())
