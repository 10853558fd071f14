"""Held-out evaluation: scoring, the wide evaluation, judge votes and artifact comparison."""
