"""Build the report of a prediction folder: measurements, quality flags, montages, CSV and HTML page.

Reads the label maps ``PRED_DIR/<case><ending>`` (any ending lgeseg reads), the quality records
``PRED_DIR/qc.json`` that ``lgeseg_predict`` writes (``lgeseg.inference.quality``; a case without a
record, e.g. predicted by another tool, is assessed here from its label map, without the mirror
check), and optionally the images the predictions were made from (``IMAGES``: a folder as
``lgeseg_predict -i`` takes it, image files or DICOM series) to draw the contours on. Writes into
``OUT`` (default ``PRED_DIR/report``): ``index.html``, ``report.csv`` and ``montages/<case>.png``; an
existing report there is replaced only with ``overwrite`` (``check_report_output``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lgeseg import io
from lgeseg.errors import OutputConflictError
from lgeseg.inference.inputs import list_input_cases, read_case
from lgeseg.inference.overlays import write_overlay
from lgeseg.inference.quality import CaseQuality, assess_segmentation, is_constant_image, read_quality_report
from lgeseg.report.measures import CaseMeasures, measure_case
from lgeseg.report.page import SEGMENT_COLUMNS, write_csv, write_page

logger = logging.getLogger(__name__)

#: What the page says about the numbers (docs/clinical_use.md has the details).
NOTES = (
    "EDV: LV blood-pool volume of the LGE stack (slice summation, gaps between slices included). LGE is "
    "acquired at one phase, usually mid-diastole, so this estimates the end-diastolic volume; it is not a cine EDV.",
    "Myocardial mass: myocardial volume x 1.05 g/mL. Wall thickness: median length of 360 radial rays "
    "inside the myocardium per slice; AHA segments are placed from the image orientation (septum towards "
    "the patient's right-anterior), to within about 30 degrees, without the right-ventricular insertion points.",
    "Automatic segmentation for research: check every contour below before using a number.",
)


def _label_maps(pred_dir: Path) -> dict[str, Path]:
    maps = {io.strip_ending(p): p for p in sorted(pred_dir.iterdir())
            if p.is_file() and io.file_ending(p) and not p.name.startswith(".")}
    if not maps:
        raise FileNotFoundError(f"{pred_dir}: no predicted label maps found (expected <case>.nii.gz files)")
    return maps


def _images(images_dir: Path | None) -> dict[str, Any]:
    if images_dir is None:
        return {}
    return {case.case_id: case for case in list_input_cases(images_dir)}


def _row(case_id: str, measures: CaseMeasures, quality: CaseQuality, montage: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "case": case_id, "edv_ml": measures.blood_pool_ml, "myocardium_ml": measures.myocardium_ml,
        "myocardium_mass_g": measures.myocardium_mass_g, "lv_slices": measures.lv_slices,
        "ring_slices": measures.ring_slices, "wall_median_mm": measures.wall_mean_mm,
        "qc_flagged": quality.flagged, "qc_score": quality.score, "qc_reasons": ";".join(quality.reasons),
        "segments_note": measures.segments_note, "montage": montage}
    row.update({column: measures.segments_mm[n] for n, column in enumerate(SEGMENT_COLUMNS, start=1)})
    return row


def _case_image(case: Any, labels: np.ndarray, geometry: Any) -> tuple[np.ndarray, bool]:
    """The image to draw on (channel 0), and whether it is constant; zeros when there is none."""
    if case is None:
        return np.zeros(labels.shape, np.float32), False
    image, image_geometry = read_case(case)
    problems = io.geometry_mismatch(image_geometry, geometry)
    if problems:
        raise ValueError(f"{case.paths[0]}: image grid differs from its prediction's: {'; '.join(problems)}")
    return image[0], is_constant_image(image)


def check_report_output(pred_dir: Path, out_dir: Path, images_dir: Path | None, cases: list[str],
                        overwrite: bool = False) -> None:
    """Refuse a report folder that is the predictions folder, is (or is inside) the images folder, or,
    unless ``overwrite``, already holds ``index.html``, ``report.csv`` or a montage of one of ``cases``.

    Example:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> check_report_output(tmp / "pred", tmp / "pred" / "report", None, ["c1"])  # the default: fine
        >>> check_report_output(tmp / "pred", tmp / "pred", None, ["c1"])
        Traceback (most recent call last):
        ValueError: ...pred: the report folder must not be the predictions folder (...); ...
        >>> _ = (tmp / "pred" / "report").mkdir(parents=True), (tmp / "pred" / "report" / "index.html").write_text("")
        >>> check_report_output(tmp / "pred", tmp / "pred" / "report", None, ["c1"])
        Traceback (most recent call last):
        lgeseg.errors.OutputConflictError: .../index.html: already exists (a report); use --overwrite to replace ...
        >>> import shutil; shutil.rmtree(tmp)
    """
    out = out_dir.resolve()
    if out == pred_dir.resolve():
        raise ValueError(f"{out_dir}: the report folder must not be the predictions folder ({pred_dir}); leave -o "
                         "out for PRED_DIR/report, or choose another folder")
    if images_dir is not None and (out == images_dir.resolve() or images_dir.resolve() in out.parents):
        raise ValueError(f"{out_dir}: the report folder must not be the images folder ({images_dir}) or inside it; "
                         "choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputConflictError(f"{out_dir}: exists and is a file; the report needs a folder")
    outputs = [out_dir / "index.html", out_dir / "report.csv", *(out_dir / "montages" / f"{c}.png" for c in cases)]
    existing = [path for path in outputs if path.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more report file(s))" if len(existing) > 1 else " (a report)"
        raise OutputConflictError(f"{existing[0]}: already exists{more}; use --overwrite to replace the report, or "
                                  "choose another folder with -o")


def make_report(pred_dir: str | Path, out_dir: str | Path | None = None, images_dir: str | Path | None = None,
                title: str | None = None, overwrite: bool = False) -> Path:
    """Write the report of a prediction folder.

    Args:
        pred_dir: folder of predicted label maps (1 blood pool, 2 myocardium), e.g. ``lgeseg_predict -o``.
        out_dir: where to write (default ``pred_dir/report``); created.
        images_dir: the images predicted (image files or DICOM series), for the montages; None draws
            the contours on a black background.
        title: page title (default: "lgeseg report: <pred_dir name>").
        overwrite: replace the report files already in ``out_dir`` (otherwise refused before any work).

    Returns:
        The path of ``index.html``. Raises ``FileNotFoundError`` when ``pred_dir`` holds no label map
        and ``ValueError`` naming the file when an image's grid differs from its prediction's.

    Example:
        >>> import csv, shutil, tempfile
        >>> from lgeseg.synth import synthesize_case
        >>> tmp = Path(tempfile.mkdtemp())
        >>> case = synthesize_case(1, index=0, seed=0, in_plane_size=64)  # its label map stands in for a prediction
        >>> io.write_label(tmp / "predictions" / "c1_000.nii.gz", case.label, case.geometry)
        >>> make_report(tmp / "predictions").relative_to(tmp).as_posix()
        'predictions/report/index.html'
        >>> with open(tmp / "predictions" / "report" / "report.csv") as handle:
        ...     row = next(csv.DictReader(handle))
        >>> row["case"], round(float(row["edv_ml"])), row["montage"]
        ('c1_000', 93, 'montages/c1_000.png')
        >>> shutil.rmtree(tmp)
    """
    pred_dir = Path(pred_dir)
    out_dir = Path(out_dir) if out_dir is not None else pred_dir / "report"
    maps = _label_maps(pred_dir)
    check_report_output(pred_dir, out_dir, Path(images_dir) if images_dir is not None else None, list(maps),
                        overwrite)
    images = _images(Path(images_dir) if images_dir is not None else None)
    qualities = {q.case_id: q for q in read_quality_report(pred_dir)}
    rows = []
    for case_id, path in tqdm(maps.items(), desc="report", unit="case"):
        labels, geometry = io.read_label(path)
        image, constant = _case_image(images.get(case_id), labels, geometry)
        quality = qualities.get(case_id) or assess_segmentation(labels, geometry.spacing, case_id,
                                                                input_constant=constant)
        measures = measure_case(labels, geometry.spacing, geometry.direction)
        montage = f"montages/{case_id}.png"
        write_overlay(out_dir / montage, image, labels, geometry.spacing, title=case_id)
        rows.append(_row(case_id, measures, quality, montage))
    missing = sorted(set(images) - set(maps))
    if missing:
        logger.warning("%d image case(s) have no prediction in %s: %s", len(missing), pred_dir, ", ".join(missing))
    write_csv(out_dir / "report.csv", rows)
    page = out_dir / "index.html"
    write_page(page, title or f"lgeseg report: {pred_dir.resolve().name}", rows, NOTES)
    return page
