"""bench/bench_split.py's verdicts (the benchmark itself is run by hand, not in the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_split import rss_verdicts


def test_rss_is_compared_across_sizes_within_one_mode() -> None:
    """Two modes whose peaks differ by design (8 MiB blocks vs 1 MiB range blocks) but
    stay flat across sizes pass; a mode whose peak grows with the size, or one over the
    limit, fails."""
    flat = rss_verdicts({"s3split-size": [53.0, 54.0], "s3split-jobs1": [73.0, 73.5]}, True)
    assert [line.endswith("PASS") for line in flat] == [True, True]
    growing = rss_verdicts({"s3split-size": [53.0, 70.0], "s3split-jobs1": [160.0, 160.0]},
                           True)
    assert [line.endswith("FAIL") for line in growing] == [True, True]
    assert "s3split-size: 53.0..70.0 MiB over 2 size(s), spread 32%" in growing[0]
