"""A synthetic volume written as a DICOM series, the way a scanner or PACS export arrives (for tests and demos).

``write_dicom_series(folder, volume, geometry, series_uid, series_number, description, tags)`` writes one
MR image file per z slice with the position, orientation, instance number and identifiers that
``lgeseg.files.dicom`` reads; ``tags`` add or replace any tag (patient, study, sequence).

GDCM's writer switches the process's C locale to "C" (ASCII); the locale is put back afterwards, or a
later decode of a subprocess's UTF-8 output with the locale's encoding would fail.
"""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lgeseg.files.io import CaseGeometry, to_sitk

#: SOP Class UID of an MR Image Storage object.
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def write_dicom_series(folder: Path, volume: np.ndarray, geometry: CaseGeometry, series_uid: str,
                       series_number: int, description: str, tags: dict[str, str] | None = None,
                       first_instance: int = 1, file_name: str = "IM{z:04d}.dcm") -> list[Path]:
    """Write ``volume`` (z, y, x) as one int16 MR slice file per z into ``folder``; returns the files.

    Args:
        folder: created if missing; files already in it with the same names are replaced.
        volume: the intensities, clipped to the int16 range.
        geometry: spacing (mm, z y x), origin and direction of ``volume``.
        series_uid, series_number, description: SeriesInstanceUID, SeriesNumber, SeriesDescription; slice z
            gets InstanceNumber and the SOPInstanceUID suffix ``z + first_instance``, the StudyInstanceUID
            is ``<series_uid>.0`` unless ``tags`` give one.
        tags: more tags ``"gggg|eeee" -> value``, written after (and so replacing) the ones above.
        file_name: the file names, formatted with ``z``.

    Example:
        >>> import tempfile
        >>> from lgeseg.files.dicom import find_series
        >>> geometry = CaseGeometry((3, 8, 8), (8.0, 1.5, 1.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> folder = Path(tempfile.mkdtemp()) / "lge"
        >>> [p.name for p in write_dicom_series(folder, np.ones((3, 8, 8)), geometry, "1.2.3.4", 7, "LGE")]
        ['IM0000.dcm', 'IM0001.dcm', 'IM0002.dcm']
        >>> len(find_series(folder))
        1
        >>> import shutil; shutil.rmtree(folder.parent)
    """
    image = to_sitk(np.clip(volume, -32768, 32767).astype(np.int16), geometry)
    d = image.GetDirection()
    orientation = "\\".join(f"{v:.10f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    saved_locale = locale.setlocale(locale.LC_ALL)
    try:
        for z in range(image.GetSize()[2]):
            plane = image[:, :, z]
            position = "\\".join(f"{v:.10f}" for v in image.TransformIndexToPhysicalPoint((0, 0, z)))
            instance = z + first_instance
            for key, value in {"0008|0060": "MR", "0008|0016": MR_IMAGE_STORAGE,
                               "0008|0018": f"{series_uid}.{instance}", "0020|000d": f"{series_uid}.0",
                               "0020|000e": series_uid, "0020|0011": str(series_number), "0008|103e": description,
                               "0020|0013": str(instance), "0020|0037": orientation, "0020|0032": position,
                               "0018|0050": f"{image.GetSpacing()[2]:.6f}", **(tags or {})}.items():
                plane.SetMetaData(key, value)
            written.append(folder / file_name.format(z=z))
            writer.SetFileName(str(written[-1]))
            writer.Execute(plane)
    finally:
        locale.setlocale(locale.LC_ALL, saved_locale)
    return written
