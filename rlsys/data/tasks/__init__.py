"""Procedurally generated task suite (the embedded default data); see `suite.build_task_suite`.

Modules are imported where used; nothing heavy happens on package import.
"""
