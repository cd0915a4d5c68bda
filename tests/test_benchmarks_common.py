"""benchmarks/_common: markdown tables, the one way benchmarks rewrite their section of a docs page, and the
options and clock of the fine-tuning benchmarks."""

from __future__ import annotations

import argparse
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


@pytest.mark.parametrize(("spaced", "rule"), [(False, "|---|---|"), (True, "| --- | --- |")])
def test_markdown_table_writes_header_rule_and_rows(spaced: bool, rule: str, benchmarks_common: ModuleType) -> None:
    lines = benchmarks_common.markdown_table(["center", "Dice"], [[2, "0.812"], ["3", 0.5]], spaced_rule=spaced)
    assert lines == ["| center | Dice |", rule, "| 2 | 0.812 |", "| 3 | 0.5 |"]


def test_markdown_table_rejects_a_row_of_the_wrong_width(benchmarks_common: ModuleType) -> None:
    with pytest.raises(ValueError, match="expected 2 cells, found 3"):
        benchmarks_common.markdown_table(["a", "b"], [[1, 2, 3]])


@pytest.mark.parametrize("write", [True, False])
def test_publish_section_prints_and_writes_only_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          write: bool, benchmarks_common: ModuleType) -> None:
    page = tmp_path / "RESULTS.md"
    benchmarks_common.publish_section("## Run\n\nbody\n", "run", write=write, path=page)
    assert capsys.readouterr().out == "## Run\n\nbody\n\n"
    assert page.is_file() == write
    if write:
        assert "<!-- run:begin -->\n## Run\n\nbody\n<!-- run:end -->\n" in page.read_text()


def test_synthetic_center_options_and_stopwatch(benchmarks_common: ModuleType) -> None:
    parser = argparse.ArgumentParser()
    benchmarks_common.add_synthetic_center_options(parser, "finetune_x", cases=12, test_cases=5, epochs=3)
    args = parser.parse_args(["--centers", "3"])
    assert (args.cases, args.test_cases, args.centers, args.epochs, args.iterations, args.seed, args.no_write) == (
        12, 5, [3], 3, 25, 0, False)
    assert Path(args.work) == benchmarks_common.ROOT / "runs" / "finetune_x"
    minutes = benchmarks_common.Stopwatch().minutes()
    assert sorted(minutes) == ["cpu_minutes", "wall_minutes"] and all(m >= 0 for m in minutes.values())
