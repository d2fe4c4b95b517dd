"""Where the benchmarks write their tables.

``benchmarks/results`` by default; ``FOUREYES_BENCH_RESULTS`` points elsewhere, so that the
suite's smoke run of every benchmark at toy sizes never replaces the published figures.
"""

import os
from pathlib import Path

RESULTS = Path(os.environ.get("FOUREYES_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
