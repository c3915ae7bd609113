"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, readable in print.

Series differ by colour *and* by dash pattern or marker, so a black-and-white print
still tells them apart; every chart has a ``<title>`` and the table of its numbers
beside it on the page.
"""

from __future__ import annotations

from decimal import Decimal

from django.utils.formats import number_format
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour, dash pattern: distinguishable on screen and in a grey print.
STYLES = (
    ("#1f6feb", ""),
    ("#d97706", "6 4"),
    ("#16a34a", "2 3"),
    ("#9333ea", "10 3 2 3"),
)


def _number(value) -> float:
    """Return a plotting coordinate (drawing only: the numbers shown stay Decimal)."""
    return float(value or 0)


def _short(value: float) -> str:
    """Return an axis label: 1 234, 12.5k, 3.4M."""
    size = abs(value)
    if size >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if size >= 10_000:
        return f"{value / 1_000:.0f}k"
    if size >= 1_000:
        return f"{value / 1_000:.1f}k"
    if size and size < 10 and value != int(value):
        return f"{value:.1f}"
    return f"{value:.0f}"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def line_chart(
    *, title: str, labels: list[str], series: list[tuple[str, list]], width: int = 640,
    height: int = 240,
) -> SafeString:
    """Return an SVG line chart of ``series`` (name, values) over ``labels``."""
    left, right, top, bottom = 52, 34, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max(
        [_number(v) for _name, values in series for v in values] or [0]
    ))
    count = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(value) -> float:
        return top + plot_h - plot_h * _number(value) / top_value

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">'
        f"<title>{escape(title)}</title>"
    ]
    for step in range(5):
        value = top_value * step / 4
        yy = y(value)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{yy + 4:.1f}" class="axis" text-anchor="end">'
            f"{escape(_short(value))}</text>"
        )
    every = max(1, -(-count // 8))
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 16}" class="axis" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for number, (name, values) in enumerate(series):
        colour, dash = STYLES[number % len(STYLES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        # A missing value (None) breaks the line: nothing is drawn for it, not a zero.
        runs, run = [], []
        for i, v in enumerate(values):
            if v is None:
                runs, run = runs + [run] if run else runs, []
            else:
                run.append(f"{x(i):.1f},{y(v):.1f}")
        runs += [run] if run else []
        for segment in runs:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash_attr} '
                f'points="{" ".join(segment)}"><title>{escape(name)}</title></polyline>'
            )
        if len(values) <= 40:
            parts.extend(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"/>'
                for i, v in enumerate(values) if v is not None
            )
    parts.append(_legend([name for name, _values in series], left, height - 10))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def _legend(names: list[str], left: int, baseline: int) -> str:
    parts, offset = [], left
    for number, name in enumerate(names):
        colour, dash = STYLES[number % len(STYLES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{offset}" x2="{offset + 22}" y1="{baseline - 4}" y2="{baseline - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash_attr}/>'
            f'<text x="{offset + 27}" y="{baseline}" class="legend">{escape(name)}</text>'
        )
        offset += 40 + 7 * len(name)
    return "".join(parts)


def bar_chart(
    *, title: str, labels: list[str], values: list, width: int = 420, colours=None,
) -> SafeString:
    """Return a horizontal SVG bar chart, each bar labelled with its value."""
    labels = [label[:22] for label in labels]
    row, right = 26, 70
    # Room for the longest label (about 7 units a character), the plot keeping its width.
    left = max(130, 7 * max((len(label) for label in labels), default=0) + 14)
    width += left - 130
    height = row * max(len(labels), 1) + 8
    top_value = max([_number(v) for v in values] or [0]) or 1.0
    plot_w = width - left - right
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        yy = 4 + i * row
        bar = plot_w * _number(value) / top_value
        colour = (colours[i] if colours and colours[i] else STYLES[0][0])
        parts.append(
            f'<text x="{left - 8}" y="{yy + 16}" class="axis" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{left}" y="{yy + 3}" width="{max(bar, 1):.1f}" height="{row - 8}" '
            f'fill="{escape(colour)}" stroke="#333" stroke-width="0.5"/>'
            f'<text x="{left + bar + 6:.1f}" y="{yy + 16}" class="axis">'
            f"{escape(_display(value))}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def _display(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        return number_format(value, decimal_pos=2 if value != int(value) else 0,
                             force_grouping=True)
    return number_format(value, force_grouping=True)


def heat_colour(value, top) -> str:
    """Return a background for a heat-map cell: white to deep blue with ``value / top``."""
    share = 0.0 if not top or value is None else min(1.0, _number(value) / _number(top))
    # Lightness from 97% down to 45%: dark cells get white text (see .heat-dark).
    return f"hsl(214, 80%, {97 - 52 * share:.0f}%)"
