"""Build plotly figures for the portal from query results (no Flask, no database)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import plotly.graph_objects as go

from app.db import models
from simulator.fleet import SEGMENT_LABELS

SEGMENT_COLOURS = {"iou": "#1f6feb", "service_bureau": "#2da44e", "security": "#bf8700"}
_LAYOUT: dict[str, Any] = {
    "margin": {"l": 56, "r": 24, "t": 36, "b": 40},
    "hovermode": "x unified",
    "legend": {"orientation": "h", "y": -0.18},
    "template": "plotly_white",
    "height": 360,
}


def fleet_load_figure(rows: Sequence[tuple[datetime, str, float]]) -> go.Figure:
    """Stacked area of fleet demand by segment."""
    fig = go.Figure()
    for segment, label in SEGMENT_LABELS.items():
        points = [(start, kw) for start, seg, kw in rows if seg == segment]
        if not points:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[round(p[1], 1) for p in points],
                name=label,
                stackgroup="fleet",
                line={"width": 1, "color": SEGMENT_COLOURS[segment]},
            )
        )
    fig.update_layout(
        **_LAYOUT, title="Fleet demand by segment (average kW per hour, last 24 h of data)"
    )
    fig.update_yaxes(title_text="kW")
    return fig


def meter_figure(readings: Sequence[models.Reading]) -> go.Figure:
    """Demand kW line over kWh bars for one meter's recent intervals."""
    starts = [r.start for r in readings]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=starts,
            y=[r.kwh for r in readings],
            name="kWh per interval",
            marker={"color": "#9ecbff"},
            yaxis="y2",
            opacity=0.6,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=starts,
            y=[r.demand_kw for r in readings],
            name="Demand kW",
            line={"color": "#0550ae", "width": 2},
        )
    )
    flagged = [r for r in readings if r.quality != "valid"]
    if flagged:
        # VEE quality: estimated, questionable and edited intervals stand out on the line.
        fig.add_trace(
            go.Scatter(
                x=[r.start for r in flagged],
                y=[r.demand_kw for r in flagged],
                name="Not valid (VEE quality)",
                mode="markers",
                text=[r.quality for r in flagged],
                hovertemplate="%{text}: %{y:.1f} kW<extra></extra>",
                marker={"color": "#cf222e", "size": 7, "symbol": "diamond"},
            )
        )
    fig.update_layout(
        **_LAYOUT,
        title="Recent 15-minute intervals",
        yaxis={"title": {"text": "kW"}, "rangemode": "tozero"},
        yaxis2={
            "title": {"text": "kWh"},
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "rangemode": "tozero",
        },
        bargap=0.05,
    )
    return fig
