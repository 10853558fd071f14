"""Progressive hint sampling: levels, per-problem level cache, hint sources, Table-9 statistics."""
