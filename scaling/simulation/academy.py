"""The academy-like week: uploads after classes on weekdays, quiet weekends.

Filled in by the academy workload (``--pattern academy``); see docs/simulator.md.
"""

from __future__ import annotations

DEFAULT_WEEKS = 3
