"""Plotly figures for the segment views (no Flask, no database)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from app.domain.segments import BureauRow, IouRow, SecurityRow

_LAYOUT: dict[str, Any] = {
    "margin": {"l": 64, "r": 24, "t": 40, "b": 40},
    "legend": {"orientation": "h", "y": -0.2},
    "template": "plotly_white",
    "height": 340,
    "barmode": "stack",
}


def iou_lines_figure(rows: Sequence[IouRow]) -> go.Figure:
    """Stacked bars of modem lines displaced by wireless endpoints vs still in service."""
    names = [r.activity.name for r in rows]
    fig = go.Figure(
        [
            go.Bar(
                name="Displaced by wireless",
                x=names,
                y=[r.lines_displaced for r in rows],
                marker_color="#1f6feb",
            ),
            go.Bar(
                name="Modem lines still in service",
                x=names,
                y=[r.lines_in_service for r in rows],
                marker_color="#d0d7de",
                marker_pattern_shape="/",
            ),
        ]
    )
    fig.update_layout(**_LAYOUT, title="Telephone-modem lines by utility")
    return fig


def bureau_cost_figure(rows: Sequence[BureauRow]) -> go.Figure:
    """Grouped bars of the yearly subscription vs running the software in-house."""
    names = [r.activity.name for r in rows]
    fig = go.Figure(
        [
            go.Bar(
                name="Service-bureau subscription ($/yr)",
                x=names,
                y=[round(r.subscription_annual) for r in rows],
                marker_color="#2da44e",
            ),
            go.Bar(
                name="Run it themselves ($/yr)",
                x=names,
                y=[round(r.self_run_annual) for r in rows],
                marker_color="#8c959f",
                marker_pattern_shape="x",
            ),
        ]
    )
    fig.update_layout(**{**_LAYOUT, "barmode": "group"}, title="Yearly cost per utility")
    return fig


def security_visits_figure(rows: Sequence[SecurityRow]) -> go.Figure:
    """Bars of escorted site visits avoided per year by building owner."""
    fig = go.Figure(
        go.Bar(
            name="Site visits avoided / yr",
            x=[r.activity.name for r in rows],
            y=[r.visits_avoided_per_year for r in rows],
            marker_color="#bf8700",
            text=[f"{r.escort_hours_saved_per_year:,.0f} escort h" for r in rows],
        )
    )
    fig.update_layout(**_LAYOUT, title="Meter-reader visits avoided per year")
    return fig
