"""The soak's own tests (test_checks.py, run by make soak-short before the soak): they import the soak's modules, which
use the benchmark's helpers (bench/seeds.py)."""

from __future__ import annotations

import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parent
for path in (SOAK, SOAK.parents[1] / "bench"):
    if str(path) not in sys.path:
        sys.path.append(str(path))
