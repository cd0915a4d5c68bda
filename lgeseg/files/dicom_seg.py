"""DICOM SEG output (``lgeseg_predict --dicom-seg``), written with highdicom (optional extra ``lgeseg[dicom]``).

Why highdicom: it is maintained (release 0.28.2 in 2026, by the Imaging Data Commons team), builds
Segmentation objects that follow the standard from the source images' own DICOM datasets (patient,
study, frame of reference, per-frame positions), and installs as pure Python wheels on top of
pydicom. pydicom-seg, the other candidate, had its last release (0.4.1) in February 2023.

A SEG is written per DICOM case, ``<case>.seg.dcm``, one BINARY segment per non-background label
(label value = segment number), with frames referencing the source slices; empty frames are
omitted. Segment codes: SNOMED CT "Left Ventricle" for the blood pool, "Left Ventricle Myocardium"
for the myocardium, "Tissue" for any other label.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from lgeseg import __version__
from lgeseg.core.atomic import atomic_output
from lgeseg.files.dicom import DicomSeries, check_regular_stack, frame_order, is_multiframe


def dicom_seg_available() -> bool:
    """True when highdicom can be imported (``pip install lgeseg[dicom]``).

    Example:
        >>> import importlib.util
        >>> dicom_seg_available() == (importlib.util.find_spec("highdicom") is not None)  # True or False per install
        True
    """
    try:
        import highdicom  # noqa: F401  # deferred: an optional dependency, imported only to check for it
    except ImportError:
        return False
    return True


def require_dicom_seg() -> None:
    """Raise ``ValueError`` with the install command when highdicom is missing.

    Usage (``lgeseg_predict --dicom-seg`` calls it before any prediction)::

        require_dicom_seg()  # without highdicom: ValueError "... pip install 'lgeseg[dicom]' ..."
    """
    if not dicom_seg_available():
        raise ValueError("--dicom-seg needs the optional package highdicom: pip install 'lgeseg[dicom]' "
                         "(or pip install highdicom)")


def _descriptions(labels: dict[str, int], model_name: str) -> list[Any]:
    import highdicom as hd  # deferred: optional dependency (lgeseg[dicom]), needed only for --dicom-seg
    from pydicom.sr.codedict import codes

    types = {"blood_pool": codes.SCT.LeftVentricle, "myocardium": codes.SCT.LeftVentricleMyocardium}
    algorithm = hd.AlgorithmIdentificationSequence(name=f"lgeseg {model_name}", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    descriptions = []
    for name, value in sorted(labels.items(), key=lambda kv: kv[1]):
        if value == 0:
            continue
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=int(value), segment_label=name.replace("_", " "),
            segmented_property_category=codes.SCT.AnatomicalStructure if name in types else codes.SCT.Tissue,
            segmented_property_type=types.get(name, codes.SCT.Tissue),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm))
    return descriptions


def write_dicom_seg(path: Path, segmentation: np.ndarray, series: DicomSeries, labels: dict[str, int],
                    model_name: str) -> Path:
    """Write the label map of one DICOM case as a DICOM Segmentation.

    Args:
        path: the ``.dcm`` file to write (atomically).
        segmentation: uint8 (z, y, x) label map on the series' grid (z in ``series.files`` order).
        series: the source series (its files are read with pydicom for the references); a multi-frame
            file's SEG frames are written in the file's frame order.
        labels: label name -> value; values must be 0, 1, ..., K-1 (they become segment numbers).
        model_name: recorded as the algorithm name.

    Returns:
        ``path``. Raises ``ValueError`` naming the series when the label map does not fit it.

    Usage (needs a DICOM series and highdicom; ``lgeseg_predict --dicom-seg`` writes one per series)::

        series = select_series(find_series("export/patient_dicoms"), ["*LGE*"])[0]
        write_dicom_seg(Path("out/p1.seg.dcm"), labels, series, {"background": 0, "blood_pool": 1, "myocardium": 2},
                        model_name="center1_model")
    """
    import highdicom as hd  # deferred: optional dependency (lgeseg[dicom]), needed only for --dicom-seg
    import pydicom

    logging.getLogger("highdicom").setLevel(logging.WARNING)  # its INFO lines (9 per case) are no news to a user
    sources = [pydicom.dcmread(f) for f in check_regular_stack(series)]  # the label map's slice order
    slices = int(sources[0].get("NumberOfFrames", 1) or 1) if is_multiframe(series) else len(sources)
    if segmentation.shape != (slices, int(sources[0].Rows), int(sources[0].Columns)):
        raise ValueError(f"series {series.case_id}: label map {segmentation.shape} does not match its "
                         f"{slices} slices of {sources[0].Rows} x {sources[0].Columns}")
    if is_multiframe(series):  # the SEG's frames follow the source file's frames, the label map the slice normal
        in_file_order = np.empty_like(segmentation)
        in_file_order[frame_order(series)] = segmentation
        segmentation = in_file_order
    try:
        seg = _segmentation(hd, sources, segmentation, labels, model_name)
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"series {series.case_id} ({series.files[0].parent}): cannot write a DICOM SEG for it: "
                         f"{err}") from err
    with atomic_output(path, suffix=".dcm") as tmp:
        seg.save_as(tmp)
    return path


def _segmentation(hd: Any, sources: list, segmentation: np.ndarray, labels: dict[str, int], model_name: str) -> Any:
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=segmentation.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=_descriptions(labels, model_name),
        series_instance_uid=hd.UID(), series_number=int(sources[0].get("SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="lgeseg", manufacturer_model_name=model_name,
        software_versions=__version__, device_serial_number="none", series_description=f"lgeseg {model_name}",
        omit_empty_frames=bool(segmentation.any()))
