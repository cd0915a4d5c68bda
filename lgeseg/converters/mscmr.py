"""MS-CMRSeg 2019 LGE (Shanghai Renji Hospital) -> lgeseg raw dataset.

Source files, found anywhere below ``SRC``: ``patientN_LGE.nii.gz`` (images) and
``patientN_LGE_manual.nii.gz`` (labels, may sit in another folder). Images without a manual
label go to ``imagesTs``.

Labels: 0 background, 500 LV blood pool -> 1, 200 LV myocardium -> 2, 600 RV blood pool -> 0;
any other value is an error naming the file and the value.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from lgeseg.converters.common import ConvertedCase, DatasetMeta, SourceItem, convert_source, load_image_case

#: MS-CMRSeg 2019 label value -> lgeseg label value.
MSCMR_LABELS: dict[int, int] = {0: 0, 500: 1, 200: 2, 600: 0}

_IMAGE = re.compile(r"^(patient\d+)_LGE\.nii(\.gz)?$", re.IGNORECASE)
_LABEL = re.compile(r"^(patient\d+)_LGE_manual\.nii(\.gz)?$", re.IGNORECASE)

META = DatasetMeta(
    name="MSCMR",
    description="MS-CMRSeg 2019 LGE (Shanghai Renji Hospital), converted by lgeseg_convert mscmr; RV removed",
    center="MSCMR (Shanghai Renji)",
    vendor="Philips",
    field_strength="1.5T",
)


def _find(src: Path, pattern: re.Pattern[str]) -> tuple[dict[str, Path], list[str]]:
    found: dict[str, Path] = {}
    duplicates: list[str] = []
    for path in sorted(src.rglob("*")):
        match = pattern.match(path.name)
        if match and path.is_file():
            case_id = match.group(1).lower()
            if case_id in found:
                duplicates.append(f"{path}: second file for {case_id} (also {found[case_id]})")
            else:
                found[case_id] = path
    return found, duplicates


def _missing_image(label_path: Path) -> list[ConvertedCase]:
    raise FileNotFoundError(f"{label_path}: manual label without a matching *_LGE.nii.gz image below the source")


def find_mscmr_cases(src: Path) -> list[SourceItem]:
    """List MS-CMRSeg LGE cases below ``src``, sorted by patient number.

    Raises ``ValueError`` naming both files when a patient's image or label occurs twice.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for name in ("patient2_LGE.nii.gz", "patient2_LGE_manual.nii.gz", "patient10_LGE.nii.gz"):
        ...     (Path(tmp.name) / name).touch()
        >>> [Path(item.name).name for item in find_mscmr_cases(Path(tmp.name))]  # by patient number
        ['patient2_LGE.nii.gz', 'patient10_LGE.nii.gz']
        >>> tmp.cleanup()
    """
    images, duplicate_images = _find(src, _IMAGE)
    labels, duplicate_labels = _find(src, _LABEL)
    if duplicate_images or duplicate_labels:
        raise ValueError("ambiguous MS-CMRSeg source:\n  " + "\n  ".join(duplicate_images + duplicate_labels))
    items = [SourceItem(str(path), partial(load_image_case, case_id, path, labels.get(case_id), MSCMR_LABELS))
             for case_id, path in images.items()]
    items += [SourceItem(str(path), partial(_missing_image, path))
              for case_id, path in labels.items() if case_id not in images]
    return sorted(items, key=lambda item: int(re.findall(r"patient(\d+)", item.name, re.IGNORECASE)[-1]))


def convert_mscmr(src: Path, dst: Path, overwrite: bool = False) -> int:
    """Convert the MS-CMRSeg 2019 LGE images at ``src`` into the raw dataset ``dst``.

    Args:
        src: folder holding ``patientN_LGE.nii.gz`` and ``patientN_LGE_manual.nii.gz`` (searched recursively).
        dst: destination raw dataset folder; must be empty unless ``overwrite``.
        overwrite: replace ``imagesTr``/``labelsTr``/``imagesTs``/``dataset.json`` in ``dst``.

    Returns:
        Number of cases written (case ids ``patientN``). Geometry is copied unchanged. Raises
        ``FileNotFoundError`` if no image is found and ``ValueError`` naming every file with an
        unexpected label value (nothing is written then).

    Usage (needs the MS-CMRSeg 2019 download; ``lgeseg_convert mscmr SRC DST`` is the same call)::

        convert_mscmr(Path("downloads/MS-CMRSeg2019"), Path("raw/Dataset102_MSCMR"))
    """
    return convert_source(src, dst, overwrite, find_mscmr_cases, META,
                          "no MS-CMRSeg LGE images found (expected patientN_LGE.nii.gz)")
