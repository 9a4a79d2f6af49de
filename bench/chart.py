"""The run's ratios as a chart: one bar per figure that has a peer and a target (emulator ÷ peer, from the same run),
the target marked on each bar, met and missed in different colours and hatching, the per-CPU-second ratio as a dot.

``bars`` is a pure function of the results dictionary (the tests check it); ``draw`` needs matplotlib (a bench-only
requirement, ``bench/requirements.txt``) and writes a PNG whose bytes depend only on the results: fixed size and
resolution, no software or date in its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report

WIDTH_IN, DPI = 10.0, 100
MET, MISSED, CPU = "#3a7d44", "#c0392b", "#1f4e79"


@dataclass(frozen=True)
class Bar:
    label: str
    ratio: float  # emulator ÷ peer (or ÷ ceiling), medians of the run
    target: float  # the target for that ratio
    met: bool
    cpu_ratio: float | None = None  # the same per CPU-second of each server, when both were measured


def _label(row: report.Row) -> str:
    section = row.section.split(" ", 1)[1].replace("`POST /v1/media/upload`", "").strip()
    return f"{section}: {row.figure}".replace("`", "")


def bars(results: dict[str, Any]) -> list[Bar]:
    """Every table row with a ratio and a ratio target, in the table's order."""
    return [
        Bar(_label(row), row.value, row.goal, row.value >= row.goal, row.cpu_value)
        for row in report.rows(results)
        if row.value is not None and row.goal is not None
    ]


def title(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    return f"bench/run.py, {results.get('started', '?')}, emulator at {machine.get('git', '?')}"


def draw(results: dict[str, Any], path: Path) -> int:
    """Draw ``bars(results)`` into the PNG ``path``; returns the number of bars."""
    return draw_bars(bars(results), title(results), path)


def draw_bars(items: list[Bar], heading: str, path: Path) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    height = 1.5 + 0.32 * max(len(items), 1)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height), dpi=DPI)
    try:
        ys = list(range(len(items)))[::-1]  # the table's first row at the top
        ax.barh(
            ys,
            [b.ratio for b in items],
            height=0.6,
            color=[MET if b.met else MISSED for b in items],
            hatch=["" if b.met else "//" for b in items],
            edgecolor="white",
        )
        for y, b in zip(ys, items, strict=True):
            ax.plot([b.target, b.target], [y - 0.4, y + 0.4], color="black", linewidth=2)
            text = f"{b.ratio:.2f}×" + (f" (per CPU-s {b.cpu_ratio:.2f}×)" if b.cpu_ratio is not None else "")
            right = max(b.ratio, b.target, b.cpu_ratio or 0.0)
            ax.annotate(text, (right, y), xytext=(6, 0), textcoords="offset points", va="center", size=7)
        cpu = [(y, b.cpu_ratio) for y, b in zip(ys, items, strict=True) if b.cpu_ratio is not None]
        if cpu:
            ax.scatter([c for _, c in cpu], [y for y, _ in cpu], marker="D", s=14, color=CPU, zorder=3)
        ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_yticks(ys, [b.label for b in items], fontsize=7)
        ax.set_xlabel("emulator ÷ peer in the same run (ceiling rows: share of the ceiling)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlim(0, max([b.ratio for b in items] + [b.target for b in items] + [c for _, c in cpu] + [1.0]) * 1.3)
        ax.set_ylim(-0.7, len(items) - 0.3)
        ax.set_title(heading, fontsize=9, loc="left")
        fig.legend(
            handles=[
                Patch(color=MET, label="target met"),
                Patch(facecolor=MISSED, hatch="//", edgecolor="white", label="target missed"),
                Line2D([], [], color="black", linewidth=2, label="target"),
                Line2D([], [], color=CPU, marker="D", linestyle="", markersize=4, label="ratio per CPU-second"),
            ],
            fontsize=7,
            loc="lower center",
            ncol=4,
            frameon=False,
        )
        fig.tight_layout(rect=(0, 0.3 / height, 1, 1))
        # No "Software" (matplotlib's version) and no date in the PNG: the same results give the same bytes.
        fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    finally:
        plt.close(fig)
    return len(items)
