"""More meter-page figures: power quality and the weekday load profile (no Flask, no database)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

import plotly.graph_objects as go

from app.db import models
from app.domain.alarms import LOW_PF_THRESHOLD, power_factor

_LAYOUT: dict[str, Any] = {
    "margin": {"l": 56, "r": 56, "t": 40, "b": 40},
    "legend": {"orientation": "h", "y": -0.2},
    "template": "plotly_white",
    "height": 320,
}


def power_quality_figure(readings: Sequence[models.Reading]) -> go.Figure:
    """Power factor per interval (with the 0.90 penalty line), kVARh and per-phase voltage."""
    starts = [r.start for r in readings]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=starts,
            y=[power_factor(r.kwh, r.kvarh) for r in readings],
            name="Power factor",
            line={"color": "#8250df", "width": 2},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[starts[0], starts[-1]] if starts else [],
            y=[LOW_PF_THRESHOLD, LOW_PF_THRESHOLD] if starts else [],
            name=f"PF penalty below {LOW_PF_THRESHOLD:.2f}",
            mode="lines",
            line={"color": "#cf222e", "dash": "dash", "width": 1},
        )
    )
    for phase, colour, dash in (
        ("a", "#1a7f37", "solid"),
        ("b", "#bf8700", "dot"),
        ("c", "#0550ae", "dashdot"),
    ):
        volts = [getattr(r, f"voltage_{phase}") for r in readings]
        if any(v is not None for v in volts):
            fig.add_trace(
                go.Scatter(
                    x=starts,
                    y=volts,
                    name=f"Phase {phase.upper()} V",
                    yaxis="y2",
                    line={"color": colour, "width": 1, "dash": dash},
                )
            )
    fig.add_trace(
        go.Bar(
            x=starts,
            y=[r.kvarh for r in readings],
            name="kVARh per interval",
            yaxis="y3",
            marker={"color": "#d8b9ff"},
            opacity=0.35,
        )
    )
    fig.update_layout(
        **_LAYOUT,
        title="Power quality: power factor, voltage and reactive energy",
        xaxis={"domain": [0, 0.92]},
        yaxis={"title": {"text": "PF"}, "range": [0.5, 1.02]},
        yaxis2={"title": {"text": "V"}, "overlaying": "y", "side": "right", "showgrid": False},
        yaxis3={"overlaying": "y", "side": "right", "position": 1.0, "showgrid": False,
                "visible": False},
        bargap=0.05,
    )  # fmt: skip
    return fig


def weekday_profile_figure(hours: Sequence[models.HourlyRollup], zone: tzinfo) -> go.Figure:
    """Average kW by local hour of day, weekdays against weekends, from hourly rollups."""
    sums: dict[tuple[bool, int], list[float]] = defaultdict(list)
    for h in hours:
        local = h.start.astimezone(zone)
        sums[(local.weekday() >= 5, local.hour)].append(h.kwh)
    fig = go.Figure()
    for weekend, name, colour, dash in (
        (False, "Weekdays", "#0550ae", "solid"),
        (True, "Weekends", "#bf8700", "dash"),
    ):
        xs = [hour for hour in range(24) if sums.get((weekend, hour))]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[sum(sums[(weekend, x)]) / len(sums[(weekend, x)]) for x in xs],
                name=name,
                mode="lines+markers",
                line={"color": colour, "dash": dash, "width": 2},
            )
        )
    fig.update_layout(
        **_LAYOUT,
        title="Load profile: average kW by hour of the local day",
        xaxis={"title": {"text": "hour"}, "dtick": 3, "range": [-0.5, 23.5]},
        yaxis={"title": {"text": "kW"}, "rangemode": "tozero"},
    )
    return fig
