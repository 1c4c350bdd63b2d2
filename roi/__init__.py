"""ROI expense-avoidance models: pure finance, segment models and uncertainty (no Flask).

``finance`` holds the cash-flow arithmetic, ``inputs`` the validated input documents,
``models`` the three segment models and the network choice, ``uncertainty`` the cases,
tornado and Monte Carlo. ``evaluate_document`` is what ``POST /api/v1/roi`` needs.
"""

from __future__ import annotations

from typing import Any

from roi.inputs import RoiInputError, defaults, parse_inputs
from roi.models import RoiResult, run

__all__ = ["RoiInputError", "RoiResult", "defaults", "evaluate_document", "parse_inputs", "run"]


def evaluate_document(document: object) -> dict[str, Any]:
    """Validate a JSON input document and return the model's JSON-able result."""
    return run(parse_inputs(document)).to_dict()
