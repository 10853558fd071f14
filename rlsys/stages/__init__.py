"""The stage runner: named stages with content-hashed cached artifacts, and what stage kinds share."""
