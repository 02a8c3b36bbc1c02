"""The campus page's chart of the import rate over time: inline SVG (no script, no font, nothing fetched),
bars of messages per minute, each with a tooltip (<title>). Pure: minutes in, markup out."""

from __future__ import annotations

import datetime as dt
import math
from html import escape

from gimport.i18n import _

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44  # the plot's margins: room for the axes' labels
MAX_BARS = 120
# bucket widths in minutes, finest first: the first that gives at most MAX_BARS bars over the span is used
BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)


def bucket_minutes(first: int, last: int) -> int:
    """The bar width (minutes) for imports from minute `first` to minute `last` (Unix times)."""
    span = (last - first) // 60 + 1
    for b in BUCKETS:
        if span <= b * MAX_BARS:
            return b
    return math.ceil(span / MAX_BARS)


def bars(minutes: dict[int, tuple[int, int]]) -> tuple[int, list[tuple[int, int]]]:
    """(bucket minutes, [(bucket start, messages)] from the first bucket to the last, empty ones included)."""
    if not minutes:
        return 1, []
    first, last = min(minutes), max(minutes)
    width = bucket_minutes(first, last) * 60
    start = first - first % width
    counts = [0] * ((last - start) // width + 1)
    for minute, (n, _size) in minutes.items():
        counts[(minute - start) // width] += n
    return width // 60, [(start + i * width, n) for i, n in enumerate(counts)]


def nice_ceiling(value: float) -> float:
    """The y axis's top: four times the smallest round step (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) that makes it reach
    `value`, so that its quarter lines fall on round numbers."""
    if value <= 0:
        return 1.0
    quarter = value / 4
    power = 10 ** math.floor(math.log10(quarter))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if quarter <= step * power:
            return float(4 * step * power)
    return float(40 * power)  # pragma: no cover - the loop ends at 10 * power


def when(t: float, *, with_date: bool = True) -> str:
    """A local wall-clock time for the page (the time zone is named once, in its header)."""
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def _number(x: float) -> str:
    """A rate or an axis value: whole from 10 up, else with up to two decimals (0.08, 1.5)."""
    return f"{x:,.0f}" if x >= 10 else f"{x:.2f}".rstrip("0").rstrip(".")


def rate_chart(minutes: dict[int, tuple[int, int]]) -> str:
    """The chart as an <svg> element with its summary line, or a sentence when nothing was imported yet."""
    per, series = bars(minutes)
    if not series:
        return (
            '<p class="note">'
            + escape(_("No message has been imported yet: the chart starts with the first."))
            + "</p>"
        )
    rates = [n / per for _t, n in series]
    top = nice_ceiling(max(rates))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(series)
    bar = min(max(step * 0.8, 1), 48)  # a few bars stay bars, not walls
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title">',
        '<title id="chart-title">' + escape(_("Messages imported per minute, the whole campus")) + "</title>",
    ]
    for i in range(5):  # the y axis: 0, 1/4 .. top, with grid lines
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(value)}</text>')
    for i, ((t, n), rate) in enumerate(zip(series, rates, strict=True)):
        h = plot_h * rate / top
        label = _("{when}: {n} message(s) in {minutes} min ({rate}/min)").format(
            when=when(t), n=f"{n:,}", minutes=per, rate=_number(rate)
        )
        parts.append(
            f'<rect class="bar" x="{LEFT + i * step + (step - bar) / 2:.1f}" y="{TOP + plot_h - h:.1f}"'
            f' width="{bar:.1f}" height="{h:.1f}"><title>{escape(label)}</title></rect>'
        )
    parts += _time_axis(series, step, per)
    parts.append("</svg>")
    return "".join(parts) + _summary(series, rates, per)


def _time_axis(series: list[tuple[int, int]], step: float, per: int) -> list[str]:
    """Up to seven time labels under the bars; the date only where it changes."""
    every = max(1, math.ceil(len(series) / 7))
    out, last_day = [], ""
    base = HEIGHT - BOTTOM
    for i in range(0, len(series), every):
        t = series[i][0]
        day = dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d")
        x = LEFT + i * step + step / 2
        text = when(t, with_date=day != last_day or per >= 1440)
        last_day = day
        out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 5}"/>')
        out.append(f'<text class="axis" x="{x:.1f}" y="{base + 20}" text-anchor="middle">{escape(text)}</text>')
    return out


def _summary(series: list[tuple[int, int]], rates: list[float], per: int) -> str:
    total = sum(n for _t, n in series)
    peak = max(range(len(rates)), key=lambda i: rates[i])
    span = len(series) * per
    text = _(
        "{total} message(s) imported from {first} to {last}; {average}/min on average, at most {peak}/min"
        " ({peak_at}); each bar is {minutes} min."
    ).format(
        total=f"{total:,}",
        first=when(series[0][0]),
        last=when(series[-1][0] + per * 60),
        average=_number(total / span),
        peak=_number(rates[peak]),
        peak_at=when(series[peak][0]),
        minutes=per,
    )
    return f'<p class="note">{escape(text)}</p>'
