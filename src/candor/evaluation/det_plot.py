"""The DET curve of a report card as an SVG file (drawn only when asked, never stored)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_det_svg(result: Mapping[str, Any], path: Path) -> Path:
    """Draw FNMR against FMR (both on log scales) from a report card's `det` points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [point for point in result.get("det", []) if point["fnmr"] > 0]
    # A fixed salt keeps the SVG's element ids, and so the file, the same run to run.
    with matplotlib.rc_context({"svg.hashsalt": "candor-det"}):
        return _draw(result, points, path, plt)


def _draw(result: Mapping[str, Any], points: list[Any], path: Path, plt: Any) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4.5))
    try:
        if points:
            axes.plot(
                [point["fmr"] for point in points],
                [point["fnmr"] for point in points],
                marker=".",
                linewidth=1.2,
            )
        for rate in result.get("settings", {}).get("fmr_targets", []):
            axes.axvline(rate, color="grey", linewidth=0.6, linestyle=":")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("false match rate (FMR)")
        axes.set_ylabel("false non-match rate (FNMR)")
        axes.set_title(
            f"DET, all pairs: {result.get('templates', 0):,} templates of "
            f"{result.get('people', 0):,} people\n{result.get('model', '')}",
            fontsize=9,
        )
        axes.grid(True, which="both", linewidth=0.3)
        figure.tight_layout()
        figure.savefig(path, format="svg", metadata={"Date": None})
    finally:
        plt.close(figure)
    return path
