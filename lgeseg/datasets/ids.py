"""nnU-Net v2 dataset ids (``4``, ``Dataset004_LGE``) and the ``DatasetNNN_*`` folders they name.

Light on purpose (``re`` and ``pathlib`` only): the command-line package checks ids while parsing,
before anything heavy is imported.
"""

from __future__ import annotations

import re
from pathlib import Path

#: An nnU-Net v2 dataset id as users type it: 4, 004, Dataset004 or Dataset004_Name (``fullmatch`` it).
DATASET_ID = re.compile(r"(?:Dataset)?(?P<id>\d{1,3})(?:_.*)?")


def dataset_id_folders(root: str | Path, dataset_id: int) -> tuple[str, list[Path]]:
    """The glob pattern ``DatasetNNN_*`` of ``dataset_id`` and the folders under ``root`` it matches (sorted).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root:
        ...     (Path(root) / "Dataset004_LGE").mkdir()
        ...     pattern, found = dataset_id_folders(root, 4)
        ...     pattern, [p.name for p in found]
        ('Dataset004_*', ['Dataset004_LGE'])
    """
    pattern = f"Dataset{dataset_id:03d}_*"
    return pattern, sorted(p for p in Path(root).glob(pattern) if p.is_dir())


def describe_matches(found: list[Path]) -> str:
    """``no folder`` or ``N folders (names)``: what a dataset-id pattern matched, for an error message.

    Example:
        >>> describe_matches([]), describe_matches([Path("Dataset004_A"), Path("Dataset004_B")])
        ('no folder', '2 folders (Dataset004_A, Dataset004_B)')
    """
    return "no folder" if not found else f"{len(found)} folders ({', '.join(p.name for p in found)})"
