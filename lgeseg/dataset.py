"""Raw datasets in nnU-Net v2's layout: ``dataset.json``, case listing.

A raw dataset folder holds ``imagesTr/<case>_0000.<ending>``, ``labelsTr/<case>.<ending>``,
optionally ``imagesTs/`` (and ``labelsTs/``), and ``dataset.json`` with ``channel_names``,
``labels``, ``numTraining``, ``file_ending`` and lgeseg's optional ``center``, ``vendor`` and
``field_strength``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from lgeseg.io import file_ending, strip_ending
from lgeseg.records import load_json

_CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """The fields of ``dataset.json`` that lgeseg uses.

    Attributes:
        name: the dataset folder's name.
        channel_names: channel index (as string) -> name, e.g. {"0": "LGE"}.
        labels: label name -> value, e.g. {"background": 0, "blood_pool": 1, "myocardium": 2}.
        num_training: ``numTraining`` as declared.
        file_ending: e.g. ".nii.gz".
        center, vendor, field_strength: optional acquisition metadata.
        raw: the whole parsed JSON.
    """

    name: str
    channel_names: dict[str, str]
    labels: dict[str, int]
    num_training: int
    file_ending: str
    center: str | None = None
    vendor: str | None = None
    field_strength: str | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        """Number of image channels."""
        return len(self.channel_names)


@dataclasses.dataclass(frozen=True)
class RawCase:
    """One case of a raw dataset.

    Attributes:
        case_id: identifier shared by the image channels and the label file.
        image_paths: one path per channel, in channel order.
        label_path: the label map, or None (unlabelled or test case).
        dataset: the dataset folder's name.
        center: acquisition center from dataset.json, or None.
    """

    case_id: str
    image_paths: tuple[Path, ...]
    label_path: Path | None
    dataset: str
    center: str | None = None


def load_dataset_info(dataset_dir: str | Path) -> DatasetInfo:
    """Read and check ``dataset_dir/dataset.json``.

    Raises ``FileNotFoundError`` if it is missing and ``ValueError`` naming the file and field
    for a missing or malformed field.
    """
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / "dataset.json"
    raw = load_json(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(raw).__name__}")
    for key in ("channel_names", "labels", "file_ending"):
        if key not in raw:
            raise ValueError(f"{path}: missing field '{key}'")
    channels = raw["channel_names"]
    if not isinstance(channels, dict) or not channels:
        raise ValueError(f"{path}: field 'channel_names' must be a non-empty object like {{\"0\": \"LGE\"}}")
    labels = raw["labels"]
    if not isinstance(labels, dict) or not all(isinstance(v, int) for v in labels.values()):
        raise ValueError(f"{path}: field 'labels' must map names to integer values, found {labels!r}")
    ending = raw["file_ending"]
    if not isinstance(ending, str) or not ending.startswith("."):
        raise ValueError(f"{path}: field 'file_ending' must look like '.nii.gz', found {ending!r}")
    return DatasetInfo(
        name=dataset_dir.resolve().name,
        channel_names={str(k): str(v) for k, v in channels.items()},
        labels={str(k): int(v) for k, v in labels.items()},
        num_training=int(raw.get("numTraining", 0)),
        file_ending=ending,
        center=raw.get("center"),
        vendor=raw.get("vendor"),
        field_strength=None if raw.get("field_strength") is None else str(raw.get("field_strength")),
        raw=raw,
    )


def split_channel_suffix(path: str | Path) -> tuple[str, int | None]:
    """Split ``case_0000.nii.gz`` into (``"case"``, 0); a name without suffix gives (name, None)."""
    stem = strip_ending(path)
    match = _CHANNEL_SUFFIX.match(stem)
    if match:
        return match.group("case"), int(match.group("channel"))
    return stem, None


def list_cases(dataset_dir: str | Path, subset: str = "Tr") -> list[RawCase]:
    """List the cases of ``dataset_dir/images<subset>`` with their labels.

    Args:
        dataset_dir: raw dataset folder.
        subset: ``"Tr"`` (imagesTr/labelsTr) or ``"Ts"`` (imagesTs/labelsTs).

    Returns:
        Cases sorted by id; ``label_path`` is None where ``labels<subset>`` has no file for the
        case. Files with unsupported endings are ignored here (``validate_dataset`` reports
        them). Raises ``FileNotFoundError`` if the images folder is missing.
    """
    dataset_dir = Path(dataset_dir)
    images_dir = dataset_dir / f"images{subset}"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: folder not found (expected nnU-Net v2 layout)")
    info = load_dataset_info(dataset_dir) if (dataset_dir / "dataset.json").is_file() else None
    channels: dict[str, dict[int, Path]] = {}
    for path in sorted(images_dir.iterdir()):
        if path.name.startswith(".") or not file_ending(path):
            continue
        case_id, channel = split_channel_suffix(path)
        channels.setdefault(case_id, {})[0 if channel is None else channel] = path
    labels_dir = dataset_dir / f"labels{subset}"
    labels: dict[str, Path] = {}
    if labels_dir.is_dir():
        for path in sorted(labels_dir.iterdir()):
            if not path.name.startswith(".") and file_ending(path):
                labels[strip_ending(path)] = path
    name = dataset_dir.resolve().name
    return [
        RawCase(
            case_id=case_id,
            image_paths=tuple(by_channel[c] for c in sorted(by_channel)),
            label_path=labels.get(case_id),
            dataset=name,
            center=info.center if info else None,
        )
        for case_id, by_channel in sorted(channels.items())
    ]

from lgeseg.validation import Problem, validate_dataset  # noqa: E402  (re-export; validation imports us lazily)

__all__ = [
    "DatasetInfo", "Problem", "RawCase", "list_cases", "load_dataset_info", "split_channel_suffix", "validate_dataset",
]
