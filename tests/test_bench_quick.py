"""The benchmark runner keeps working: ``python -m contrib.bench --quick`` writes its report.

Checks that the report files exist with the expected keys and sections, not the numbers (nor
how long the run took: timings live in the report, and this test only bounds a hang).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mounting import FUSE_AVAILABLE

ROOT = Path(__file__).resolve().parents[1]

MOUNT_METRICS = {"meta_cold", "meta_warm", "session_json_cold", "session_json_warm", "session_tree_cold",
                 "session_tree_warm", "big_cold", "big_warm", "write_closed", "write_durable", "close_p50",
                 "close_p99", "mount_start"}


@pytest.mark.timeout(1800)
def test_quick_bench_writes_report(tmp_path):
    out = tmp_path / "bench"
    r = subprocess.run([sys.executable, "-m", "contrib.bench", "--quick", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=1700)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "report.md").is_file() and (out / "report.json").is_file()
    res = json.loads((out / "report.json").read_text())

    for key in ("schema", "quick", "config", "machine", "tools", "borrowed", "corpus", "metrics", "ratios",
                "storage", "rss", "scaling", "profile", "notes", "errors", "sections", "seconds", "plots"):
        assert key in res, key
    assert res["quick"] is True
    assert res["errors"] == {}
    machine = res["machine"]
    for key in ("cpu", "cores", "memory_bytes", "kernel", "python", "load_average_start", "load_average_end"):
        assert machine.get(key) is not None, key
    assert {"pyfuse3", "zstandard", "pyfastcdc"} <= set(machine["versions"])

    storage = res["storage"]
    assert storage["logical_bytes"] > 0
    assert {"ext4 (cp -a + sync)", "legacy monolithic JSON + attachments"} <= set(storage["systems"])
    assert any(name.startswith("sessionfs") for name in storage["systems"])
    for system in storage["systems"].values():
        assert system["bytes"] > 0

    for ratio in res["ratios"]:
        assert {"metric", "label", "baseline", "sessionfs", "baseline_value", "ratio"} <= set(ratio)

    md = (out / "report.md").read_text()
    for heading in ("# sessionfs benchmark report", "## Machine", "## Headline", "## Ratios",
                    "## The three worst ratios", "## Storage", "## Memory", "## Growth", "## Method and notes"):
        assert heading in md, heading
    assert "load average" in md

    if FUSE_AVAILABLE:
        assert MOUNT_METRICS <= set(res["metrics"])
        for key in MOUNT_METRICS - {"mount_start"}:
            m = res["metrics"][key]
            assert "sessionfs" in m["median"] and "ext4" in m["median"], key
            assert len(m["samples"]["sessionfs"]) >= 2, key
        for key in ("meta_cold", "session_json_cold", "big_cold"):
            assert "memfs" in res["metrics"][key]["median"], key
        assert "legacy" in res["metrics"]["meta_cold"]["median"]
        assert {"peak_rss", "idle_rss", "timeline"} <= set(res["rss"])
        points = res["scaling"]["points"]
        assert len(points) >= 2
        assert {"sessions", "list", "search", "stored_bytes", "logical_bytes"} <= set(points[0])
        assert any(r["baseline"] == "ext4" for r in res["ratios"])
        assert "| metadata.json x" in md
    if res["plots"]:
        for name in res["plots"].values():
            assert (out / name).is_file() and (out / name).stat().st_size < 200_000
