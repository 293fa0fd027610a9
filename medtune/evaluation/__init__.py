"""Scoring: ``metrics`` (span, classification and relation metrics), ``model`` (evaluate a model
directory on data) and ``pipeline`` (evaluate a whole pipeline end to end)."""
