"""Channel partner rules and workflows: filled in by the partners issue (pure, no Flask)."""
