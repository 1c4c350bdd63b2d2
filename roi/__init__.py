"""ROI expense-avoidance models: filled in by the ROI issue (pure finance, no Flask)."""
