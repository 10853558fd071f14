"""Visual tasks rendered with PIL from scene descriptions: task rows in three tiers, captions, Keye's
re-formatted caption data and trap questions, with images written beside the jsonl files.

Kept out of the text suite on purpose: `rlsys.data.embedded.generator_sources()` hashes only
rlsys/data/tasks/*.py, so nothing here changes the text suite's cache keys; the visual suite has its own
(`suite.visual_fingerprint`). Entry points: `VisualSuiteSpec`, `build_visual_suite`, `ensure_visual_suite`.
Modules are imported where used; nothing heavy happens on package import.
"""
