"""The storage-by-media-kind section is generated: ``report.write`` renders it from
``media.json`` (what ``media_bench --json`` keeps) each time it writes the report, and
``media_bench --report`` replaces it in place, leaving the other sections."""

from __future__ import annotations

import json
from pathlib import Path

from contrib.bench import media_bench, report

BENCH = Path(__file__).resolve().parent.parent / "bench"


def results(ratio_speech: float) -> dict:
    def row(sfs: float) -> dict:
        return {"sessionfs": {"bytes": sfs * 1e6, "catalog": 1e5}, "borg": {"bytes": 1e6},
                "restic": {"bytes": 1.1e6}, "juicefs": {"error": "juicefs is missing"}}
    trees = {t: row(0.9) for t in media_bench.TREES}
    trees["speech-heavy"] = row(ratio_speech)
    return {"sessions": 2, "seed": 7, "finished": "now", "logical": dict.fromkeys(media_bench.TREES, 5e6),
            "results": trees}


def test_the_section_is_rendered_whenever_the_report_is_written(tmp_path):
    res = json.loads((BENCH / "report.json").read_text())
    assert report.media_section(tmp_path) == ""
    (tmp_path / report.MEDIA_RESULTS).write_text(json.dumps(results(0.9)))
    report.write(res, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert md.count(media_bench.SECTION) == 1 and "## Method and notes" in md
    assert "| speech-heavy | 5.00 | 0.90 (0.10) | 1.00 | 1.10 | failed | 0.900 | <= 0.85: NOT met |" in md
    assert "| screenshot-heavy | 5.00 | 0.90 (0.10) | 1.00 | 1.10 | failed | 0.900 | <= 1.00: met |" in md


def test_report_option_replaces_the_section_in_place(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("# r\n\n## Before\n\nkept\n\n## After\n\nkept too\n")
    media_bench.put_section(path, media_bench.section(results(0.9)))
    media_bench.put_section(path, media_bench.section(results(0.8)))
    md = path.read_text()
    assert md.count(media_bench.SECTION) == 1 and md.count("kept") == 2
    assert "<= 0.85: met" in md and "NOT met" not in md
