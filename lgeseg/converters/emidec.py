"""EMIDEC (MICCAI 2020 challenge, University Hospital Dijon) -> lgeseg raw dataset.

Source layout: ``SRC/Case_*/Images/Case_*.nii.gz`` (LGE short-axis stack) and
``SRC/Case_*/Contours/Case_*.nii.gz`` (labels), found anywhere below ``SRC``. Cases without
``Contours`` (the challenge's test cases) go to ``imagesTs``.

Labels: 0 background, 1 LV cavity -> 1 blood pool, 2 myocardium -> 2, 3 infarct -> 2,
4 persistent microvascular obstruction (no-reflow) -> 2 (scar is myocardium).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from lgeseg.converters.common import DatasetMeta, SourceItem, convert_source, load_image_case

logger = logging.getLogger(__name__)

#: EMIDEC label value -> lgeseg label value.
EMIDEC_LABELS: dict[int, int] = {0: 0, 1: 1, 2: 2, 3: 2, 4: 2}

META = DatasetMeta(
    name="EMIDEC",
    description="EMIDEC LGE (University Hospital Dijon), converted by lgeseg_convert emidec; "
    "infarct and no-reflow merged into myocardium",
    center="EMIDEC (Dijon)",
    vendor="Siemens",
    field_strength=None,  # 1.5 T and 3 T scanners, not recorded per case
)


def find_emidec_cases(src: Path) -> list[SourceItem]:
    """List EMIDEC cases below ``src`` (folders ``Case_*`` holding ``Images/``), sorted by name.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for name, contoured in (("Case_N006", True), ("Case_P012", False)):
        ...     case = Path(tmp.name) / "emidec" / name
        ...     (case / "Images").mkdir(parents=True)
        ...     (case / "Images" / f"{name}.nii.gz").touch()
        ...     if contoured:
        ...         (case / "Contours").mkdir()
        ...         (case / "Contours" / f"{name}.nii.gz").touch()
        >>> [Path(item.name).name for item in find_emidec_cases(Path(tmp.name))]  # Case_P012 goes to imagesTs
        ['Case_N006', 'Case_P012']
        >>> tmp.cleanup()
    """
    items = []
    for case_dir in sorted(p for p in src.rglob("Case_*") if (p / "Images").is_dir()):
        image_path = case_dir / "Images" / f"{case_dir.name}.nii.gz"
        label_path = case_dir / "Contours" / f"{case_dir.name}.nii.gz"
        if not label_path.is_file():
            logger.info("%s: no Contours file, written to imagesTs", case_dir)
        items.append(SourceItem(str(case_dir), partial(load_image_case, case_dir.name, image_path,
                                                       label_path if label_path.is_file() else None, EMIDEC_LABELS)))
    return items


def convert_emidec(src: Path, dst: Path, overwrite: bool = False) -> int:
    """Convert the EMIDEC dataset at ``src`` into the raw dataset ``dst``.

    Args:
        src: the unpacked EMIDEC folder (``Case_*`` folders anywhere below it).
        dst: destination raw dataset folder; must be empty unless ``overwrite``.
        overwrite: replace ``imagesTr``/``labelsTr``/``imagesTs``/``dataset.json`` in ``dst``.

    Returns:
        Number of cases written. Image and label geometry (spacing, origin, direction) are
        copied unchanged. Raises ``FileNotFoundError`` if no case is found, ``ValueError``
        naming every file that could not be converted (e.g. an unexpected label value).

    Usage (needs the EMIDEC download; ``lgeseg_convert emidec SRC DST`` is the same call)::

        convert_emidec(Path("downloads/emidec-dataset-1.0.1"), Path("raw/Dataset101_EMIDEC"))
    """
    return convert_source(src, dst, overwrite, find_emidec_cases, META,
                          "no EMIDEC cases found (expected Case_*/Images/Case_*.nii.gz)")
