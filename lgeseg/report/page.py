"""The report's files: one CSV row per case and one static HTML page (no script, no server, no network)."""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lgeseg.atomic import atomic_output
from lgeseg.report.measures import AHA_SEGMENTS

#: CSV columns before the 16 segment columns.
COLUMNS = ("case", "edv_ml", "myocardium_ml", "myocardium_mass_g", "lv_slices", "ring_slices", "wall_median_mm",
           "qc_flagged", "qc_score", "qc_reasons", "segments_note", "montage")
SEGMENT_COLUMNS = tuple(f"aha{n}_{level}_{name}_mm" for n, level, name in AHA_SEGMENTS)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.1f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (dicts with ``COLUMNS`` + ``SEGMENT_COLUMNS``) to ``path`` atomically; NaN as empty.

    Example:
        >>> import tempfile
        >>> row = {**dict.fromkeys(COLUMNS, ""), **dict.fromkeys(SEGMENT_COLUMNS, float("nan"))}  # no segments
        >>> row.update(case="c1", edv_ml=92.87)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_csv(Path(folder) / "report.csv", [row])
        ...     lines = (Path(folder) / "report.csv").read_text().splitlines()
        >>> lines[1].split(",")[:2]  # one decimal; NaN as an empty cell
        ['c1', '92.9']
    """
    with atomic_output(path, suffix=".csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, *SEGMENT_COLUMNS])
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(row[key]) for key in writer.fieldnames})


_STYLE = """
body { font-family: DejaVu Sans, Arial, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
p.note { color: #555; font-size: 13px; margin-top: 2px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #eef2f6; } td.l, th.l { text-align: left; }
tr.flag td { background: #fff0e0; } span.flag { color: #b34700; font-weight: bold; }
img { max-width: 100%; border: 1px solid #ddd; margin-top: 6px; }
"""


def _summary_table(rows: Sequence[dict[str, Any]]) -> str:
    head = ("<tr><th class='l'>case</th><th>EDV (mL)</th><th>myocardium (mL)</th><th>mass (g)</th>"
            "<th>LV slices</th><th>wall median (mm)</th><th class='l'>quality check</th></tr>")
    lines = [head]
    for row in rows:
        flag = "<span class='flag'>check: " + html.escape(row["qc_reasons"] or "flagged") + "</span>" \
            if row["qc_flagged"] else "passed"
        case = html.escape(row["case"])
        lines.append(f"<tr{' class=flag' if row['qc_flagged'] else ''}><td class='l'><a href='#{case}'>{case}</a>"
                     f"</td><td>{_cell(row['edv_ml'])}</td><td>{_cell(row['myocardium_ml'])}</td>"
                     f"<td>{_cell(row['myocardium_mass_g'])}</td><td>{row['lv_slices']}</td>"
                     f"<td>{_cell(row['wall_median_mm'])}</td><td class='l'>{flag}</td></tr>")
    return "<table>" + "\n".join(lines) + "</table>"


def _segment_table(row: dict[str, Any]) -> str:
    if row["segments_note"]:
        note = html.escape(row["segments_note"])
        return f"<p class='note'>Wall thickness per AHA segment: not measured ({note}).</p>"
    cells = []
    for (number, level, name), column in zip(AHA_SEGMENTS, SEGMENT_COLUMNS, strict=True):
        cells.append(f"<tr><td>{number}</td><td class='l'>{level}</td><td class='l'>{name}</td>"
                     f"<td>{_cell(row[column]) or '-'}</td></tr>")
    return ("<table><tr><th>AHA</th><th class='l'>level</th><th class='l'>segment</th><th>wall (mm)</th></tr>"
            + "".join(cells) + "</table>")


def render_page(title: str, rows: Sequence[dict[str, Any]], notes: Sequence[str]) -> str:
    """The report as one self-contained HTML document (montages linked as relative PNG paths).

    Example:
        >>> row = {**dict.fromkeys(COLUMNS, ""), **dict.fromkeys(SEGMENT_COLUMNS, float("nan"))}
        >>> row.update(case="c1", qc_flagged=False, segments_note="no ring", montage="montages/c1.png")
        >>> page = render_page("lgeseg report", [row], notes=["Check every contour."])
        >>> page.startswith("<!DOCTYPE html>"), "montages/c1.png" in page, "Check every contour." in page
        (True, True, True)
    """
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in notes]
    parts.append(_summary_table(rows))
    for row in rows:
        parts.append(f"<h2 id='{html.escape(row['case'])}'>{html.escape(row['case'])}</h2>")
        parts.append(f"<p class='note'>EDV {_cell(row['edv_ml'])} mL, myocardium {_cell(row['myocardium_ml'])} mL, "
                     f"mass {_cell(row['myocardium_mass_g'])} g, {row['ring_slices']} slice(s) with a myocardial "
                     f"ring, median wall {_cell(row['wall_median_mm']) or '-'} mm.</p>")
        parts.append(_segment_table(row))
        parts.append(f"<img src='{html.escape(row['montage'])}' alt='every slice of {html.escape(row['case'])} with "
                     "the endocardial (red) and epicardial (green) contours'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_page(path: Path, title: str, rows: Sequence[dict[str, Any]], notes: Sequence[str]) -> None:
    """Write ``render_page(...)`` to ``path`` atomically.

    Example:
        >>> import tempfile
        >>> row = {**dict.fromkeys(COLUMNS, ""), **dict.fromkeys(SEGMENT_COLUMNS, float("nan"))}
        >>> row.update(case="c1", qc_flagged=False, segments_note="no ring", montage="montages/c1.png")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_page(Path(folder) / "index.html", "lgeseg report", [row], notes=[])
        ...     (Path(folder) / "index.html").read_text().count("<h1>lgeseg report</h1>")
        1
    """
    with atomic_output(path, suffix=".html") as tmp:
        tmp.write_text(render_page(title, rows, notes), encoding="utf-8")
