"""benchmarks/_common.write_section: the one way benchmarks rewrite their section of a docs page."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest


def test_a_heading_section_is_replaced_in_place_and_a_new_one_appended(tmp_path: Path,
                                                                        benchmarks_common: ModuleType) -> None:
    page = tmp_path / "PERFORMANCE.md"
    page.write_text("# Performance\n\n## A\n\nold a\n\n## B\n\nold b\n")
    benchmarks_common.write_section(page, "## A\n\nnew a\n", "## A")
    benchmarks_common.write_section(page, "## C\n\nc\n", "## C")
    assert page.read_text() == "# Performance\n\n## A\n\nnew a\n\n## B\n\nold b\n\n## C\n\nc\n"


@pytest.mark.parametrize("present", [True, False])
def test_a_marker_section_keeps_the_rest_of_the_page(
        tmp_path: Path, present: bool, benchmarks_common: ModuleType) -> None:
    page = tmp_path / "RESULTS.md"
    old = "<!-- run:begin -->\nold\n<!-- run:end -->\n" if present else ""
    page.write_text(f"# Results\n\nbefore\n\n{old}after\n")
    benchmarks_common.write_section(page, "new\n", "run")
    text = page.read_text()
    assert text.count("<!-- run:begin -->\nnew\n<!-- run:end -->\n") == 1 and "old" not in text
    assert text.startswith("# Results\n\nbefore\n\n") and "after\n" in text
