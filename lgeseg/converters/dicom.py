"""A folder of DICOM series (a PACS export) -> lgeseg raw dataset (unlabelled cases in ``imagesTs``).

Every series found below ``SRC`` (or those picked with ``series``, see ``lgeseg.dicom.select_series``)
becomes ``imagesTs/<case>_0000.nii.gz`` with the geometry SimpleITK's series reader gives it, named
like ``lgeseg_predict`` names DICOM cases. ``dataset.json`` takes the vendor, field strength and
institution of the first series (DICOM Manufacturer, MagneticFieldStrength, InstitutionName) and
``dicom_series`` maps each case to its SeriesInstanceUID, number and description.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lgeseg.converters.common import ConvertedCase, DatasetMeta, SourceItem, check_destination, write_dataset
from lgeseg.files.dicom import DicomSeries, find_series, read_series, select_series


def _load(series: DicomSeries) -> list[ConvertedCase]:
    image, geometry = read_series(series)
    return [ConvertedCase(series.case_id, image, geometry)]


def _meta(chosen: Sequence[DicomSeries], name: str) -> DatasetMeta:
    first = chosen[0].metadata
    strength = first.get("field_strength", "")
    return DatasetMeta(
        name=name, description=f"{len(chosen)} DICOM series converted by lgeseg_convert dicom",
        center=first.get("institution") or None, vendor=first.get("manufacturer") or None,
        field_strength=f"{strength}T" if strength else None,
        extra={"dicom_series": {s.case_id: {"series_instance_uid": s.uid, "series_number": s.number,
                                            "series_description": s.description} for s in chosen}})


def convert_dicom(src: str | Path, dst: str | Path, overwrite: bool = False, series: Sequence[str] | None = None,
                  name: str = "DICOM") -> int:
    """Convert the DICOM series below ``src`` into the raw dataset ``dst``.

    Args:
        src: folder searched recursively for DICOM series.
        dst: destination raw dataset folder (empty, unless ``overwrite``).
        overwrite: replace imagesTr/labelsTr/imagesTs/labelsTs/dataset.json in a non-empty ``dst``.
        series: patterns picking series (UID, number, case name or description); None: all.
        name: the dataset's ``name`` in dataset.json.

    Returns:
        Number of cases written. Raises ``FileNotFoundError`` when ``src`` holds no DICOM series and
        ``ValueError`` naming a series that is not one regular stack or a pattern matching nothing.

    Usage (needs DICOM files; ``lgeseg_convert dicom SRC DST`` is the same call)::

        convert_dicom(Path("export/patient_dicoms"), Path("raw/Dataset104_Local"), series=["*LGE*"])
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: source folder not found")
    check_destination(dst, overwrite)
    chosen = select_series(find_series(src), series)
    if not chosen:
        raise FileNotFoundError(f"{src}: no DICOM series found")
    items = [SourceItem(s.case_id, lambda s=s: _load(s)) for s in chosen]
    return write_dataset(items, dst, _meta(chosen, name), overwrite)
