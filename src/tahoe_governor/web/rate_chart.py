"""A small inline SVG line chart of rates over the last minutes, for the status pages.

Drawn on the server (no script, no external file): a ``<figure>`` holding an
``<svg>`` that scales to the page width and an HTML legend. Values are bytes
per second; the vertical scale starts at zero and ends at a round figure
(1, 2 or 5 times a power of ten) above the largest value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import attrs
from twisted.web.template import Tag, tags

from tahoe_governor.web.human_units import format_seconds, format_speed
from tahoe_governor.web.rate_history import RateSample

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT = 600, 170
LEFT, RIGHT, TOP, BOTTOM = 64, 592, 8, 148


@attrs.frozen
class ChartLine:
    """One series: ``points`` are (seconds, bytes/s), oldest first."""

    label: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


def round_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is >= ``value`` (1 for <= 0)."""
    if not value > 0 or math.isinf(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value * (1 - 1e-12):
            return step * power
    return 10 * power


def _distinct_labels(labels: dict[str, str]) -> dict[str, str]:
    """TubID -> label, with the start of the TubID added where two peers share a label."""
    count = Counter(labels.values())
    return {tubid: label if count[label] == 1 else f"{label} ({tubid[:8]})"
            for tubid, label in labels.items()}


def lines_from_samples(samples: Iterable[RateSample]) -> tuple[list[ChartLine], list[ChartLine]]:
    """Peer lines (up solid, down dashed; one pair per TubID, labelled by its latest
    nickname) and job lines from a history's samples."""
    up: dict[str, list[tuple[float, float]]] = {}
    down: dict[str, list[tuple[float, float]]] = {}
    jobs: dict[str, list[tuple[float, float]]] = {}
    labels: dict[str, str] = {}
    for sample in samples:
        labels.update(sample.peer_labels)
        for series, values in ((up, sample.peers_up), (down, sample.peers_down),
                               (jobs, sample.jobs)):
            for key, rate in values.items():
                series.setdefault(key, []).append((sample.at, rate))
    shown = _distinct_labels({tubid: labels.get(tubid, tubid[:8]) for tubid in up})
    peer_lines = []
    for tubid in sorted(up, key=lambda t: (shown[t], t)):
        peer_lines.append(ChartLine(f"{shown[tubid]} up", up[tubid]))
        peer_lines.append(ChartLine(f"{shown[tubid]} down", down.get(tubid, []), dashed=True))
    job_lines = [ChartLine(label, jobs[label]) for label in sorted(jobs)]
    return peer_lines, job_lines


def _svg(name: str, **attributes: object) -> Tag:
    # tags.* knows HTML names only; SVG elements are built as plain Tags.
    names = {key: key.rstrip("_").replace("_", "-") for key in attributes}
    return Tag(name, attributes={names[k]: str(v) for k, v in attributes.items()})


def rate_chart(caption: str, lines: Sequence[ChartLine], start: float, end: float) -> Tag:
    """A ``<figure>`` with the chart of ``lines`` between instants ``start`` and ``end``."""
    span = max(end - start, 1e-9)
    finite = [v for line in lines for _, v in line.points if math.isfinite(v)]
    top = round_ceiling(max(finite, default=0.0))

    def x(at: float) -> float:
        return LEFT + (min(max(at, start), end) - start) / span * (RIGHT - LEFT)

    def y(value: float) -> float:
        return BOTTOM - min(max(value, 0.0), top) / top * (BOTTOM - TOP)

    svg = _svg("svg", viewBox=f"0 0 {WIDTH} {HEIGHT}", role="img", class_="chart",
               preserveAspectRatio="xMidYMid meet")
    svg.attributes["aria-label"] = caption
    for fraction in (0.0, 0.5, 1.0):
        level = y(top * fraction)
        svg(_svg("line", x1=LEFT, x2=RIGHT, y1=f"{level:.1f}", y2=f"{level:.1f}",
                 class_="grid"))
        if finite:
            svg(_svg("text", x=LEFT - 6, y=f"{level + 4:.1f}", text_anchor="end",
                     class_="axis")(format_speed(top * fraction)))
    svg(_svg("text", x=LEFT, y=HEIGHT - 4, class_="axis")(f"-{format_seconds(span)}"))
    svg(_svg("text", x=RIGHT, y=HEIGHT - 4, text_anchor="end", class_="axis")("now"))
    legend = tags.ul(class_="legend")
    paired = any(line.dashed for line in lines)  # up and down of a peer share a colour
    for index, line in enumerate(lines):
        color = PALETTE[(index // 2 if paired else index) % len(PALETTE)]
        points = [(x(at), y(v)) for at, v in line.points if math.isfinite(v)]
        style = {"stroke": color, "fill": "none", "stroke_width": 2}
        if line.dashed:
            style["stroke_dasharray"] = "5 3"
        if len(points) > 1:
            svg(_svg("polyline", points=" ".join(f"{px:.1f},{py:.1f}" for px, py in points),
                     **style))
        if points:
            px, py = points[-1]
            svg(_svg("circle", cx=f"{px:.1f}", cy=f"{py:.1f}", r=2.5, fill=color))
        latest = format_speed(line.points[-1][1]) if line.points else "no data"
        legend(tags.li(
            tags.span(class_="swatch dashed" if line.dashed else "swatch",
                      style=f"border-color: {color}"),
            f"{line.label}: {latest}",
        ))
    if not finite:
        svg(_svg("text", x=(LEFT + RIGHT) / 2, y=(TOP + BOTTOM) / 2, text_anchor="middle",
                 class_="axis")("no samples yet"))
    return tags.figure(tags.figcaption(caption), svg, legend, class_="chart")
