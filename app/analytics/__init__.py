"""Query results → plotly figures (no Flask)."""
