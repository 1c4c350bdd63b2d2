"""Plotly figures for the channel workspace: partner ranking, pipeline, revenue, sales cycle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from partners.deals import STATUS_LABELS, Status
from partners.evaluation import Scored
from partners.kpis import NORM_MONTHS, Kpis

SEGMENT_COLORS = {"iou": "#0550ae", "service_bureau": "#2da44e", "security": "#bf8700"}
SEGMENT_NAMES = {"iou": "IOU", "service_bureau": "Service bureau", "security": "Security"}
_LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 50, "b": 60},
    "template": "plotly_white",
    "legend": {"orientation": "h", "y": -0.2},
}


def ranking_figure(ranked: Sequence[Scored]) -> go.Figure:
    """Stack each candidate's distribution and synergy score, best first."""
    names = [f"{s.rank}. {s.candidate.name}" for s in ranked]
    fig = go.Figure(
        [
            go.Bar(
                name="Distribution strength",
                y=names,
                x=[round(s.distribution, 1) for s in ranked],
                orientation="h",
                marker_color="#0550ae",
            ),
            go.Bar(
                name="Synergy",
                y=names,
                x=[round(s.synergy, 1) for s in ranked],
                orientation="h",
                marker_color="#2da44e",
            ),
        ]
    )
    fig.update_layout(
        title="Partner ranking (weighted score out of 100)",
        barmode="stack",
        yaxis={"autorange": "reversed"},
        xaxis={"range": [0, 100]},
        height=120 + 32 * len(ranked),
        **_LAYOUT,
    )
    return fig


def pipeline_figure(k: Kpis) -> go.Figure:
    """Show deals by stage, stacked by segment."""
    stages = [s for s in Status if s.value in k.pipeline]
    fig = go.Figure(
        [
            go.Bar(
                name=SEGMENT_NAMES.get(segment, segment),
                x=[STATUS_LABELS[s] for s in stages],
                y=[k.pipeline[s.value].get(segment, 0) for s in stages],
                marker_color=SEGMENT_COLORS.get(segment),
            )
            for segment in k.segments
        ]
    )
    fig.update_layout(
        title="Pipeline by stage and segment (deals)", barmode="stack", height=360, **_LAYOUT
    )
    return fig


def revenue_figure(per_partner: Mapping[str, Kpis], names: Mapping[str, str]) -> go.Figure:
    """Compare what each partnership brought the vendor and the distributor (won deals)."""
    ids = list(per_partner)
    labels = [names.get(i, i) for i in ids]
    fig = go.Figure(
        [
            go.Bar(
                name="Vendor net",
                x=labels,
                y=[per_partner[i].vendor_revenue for i in ids],
                marker_color="#0550ae",
            ),
            go.Bar(
                name="Distributor margin",
                x=labels,
                y=[per_partner[i].distributor_revenue for i in ids],
                marker_color="#2da44e",
            ),
        ]
    )
    fig.update_layout(
        title="Revenue to each side (won deals, USD)", barmode="group", height=360, **_LAYOUT
    )
    return fig


def cycle_figure(k: Kpis) -> go.Figure:
    """Plot each won deal's sales cycle against the 6-9 month norm band."""
    fig = go.Figure(
        go.Bar(
            x=[f"won #{i + 1}" for i in range(len(k.cycle_months))],
            y=k.cycle_months,
            marker_color="#0550ae",
            name="Sales cycle",
        )
    )
    fig.add_hrect(
        y0=NORM_MONTHS[0],
        y1=NORM_MONTHS[1],
        fillcolor="#2da44e",
        opacity=0.15,
        line_width=0,
        layer="below",
        annotation_text="6-9 month norm",
    )
    fig.update_layout(
        title="Sales cycle of won deals (months)",
        height=320,
        yaxis={"rangemode": "tozero"},
        **_LAYOUT,
    )
    return fig
