"""Charts as inline SVG: matplotlib's Agg-free SVG backend, text kept as text.

Text stays text (svg.fonttype "none"), so the numbers and names in a chart can be read,
searched and copied in the page. The SVG is embedded in the HTML: a report is one file
with no external assets and no JavaScript.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure

_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",
    # A fixed salt makes the SVG's element ids, and so the report, reproducible.
    "svg.hashsalt": "candor-reports",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# Colour-blind-safe (Okabe–Ito), with grey last for "others".
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
OTHERS_COLOUR = "#999999"
TOP_USERS = 8


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        # The constrained layout already fits the labels: no second, "tight" drawing pass.
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def weekly_by_user_svg(weekly: Sequence[tuple[str, Sequence[tuple[str, int]]]]) -> str:
    """Stacked bars: requests per week, one colour per user (the busiest few, then others)."""
    totals: dict[str, int] = {}
    for _, users in weekly:
        for user, count in users:
            totals[user] = totals.get(user, 0) + count
    ranked = sorted(totals, key=lambda user: (-totals[user], user))
    top = ranked[:TOP_USERS]
    with matplotlib.rc_context(_STYLE):
        figure = _figure(9, 3.6)
        axes = figure.subplots()
        weeks = [week for week, _ in weekly]
        bottoms = [0] * len(weeks)
        series = [(user, PALETTE[i % len(PALETTE)]) for i, user in enumerate(top)]
        if len(ranked) > TOP_USERS:
            series.append((f"{len(ranked) - TOP_USERS} others", OTHERS_COLOUR))
        for user, colour in series:
            values = []
            for _, users in weekly:
                counts = dict(users)
                if user in top:
                    values.append(counts.get(user, 0))
                else:
                    values.append(sum(n for name, n in users if name not in top))
            axes.bar(weeks, values, bottom=bottoms, color=colour, label=user, width=0.8)
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
        axes.set_ylabel("requests")
        axes.set_title("Search requests per week, by user", loc="left")
        axes.tick_params(axis="x", labelrotation=60)
        if series:
            axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        if not any(bottoms):
            axes.text(0.5, 0.5, "no requests in the period", transform=axes.transAxes,
                      ha="center")  # fmt: skip
        return _svg(figure)


def bars_svg(title: str, items: Sequence[tuple[str, int]], *, colour: str = PALETTE[0]) -> str:
    """Horizontal bars with their counts written at their ends."""
    height = 0.9 + 0.3 * max(len(items), 1)
    with matplotlib.rc_context(_STYLE):
        figure = _figure(7, height)
        axes = figure.subplots()
        labels = [label for label, _ in items][::-1]
        values = [value for _, value in items][::-1]
        bars = axes.barh(labels, values, color=colour)
        axes.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3)
        axes.set_title(title, loc="left")
        axes.set_xlabel("requests")
        if not items:
            axes.text(0.5, 0.5, "none", transform=axes.transAxes, ha="center")
        axes.margins(x=0.12)
        return _svg(figure)
