"""The input side of prediction: which files form a case, and checking them before any work starts."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from lgeseg.core.errors import InvalidInputError
from lgeseg.core.records import CaseGeometry
from lgeseg.datasets.layout import split_channel_suffix
from lgeseg.files import io
from lgeseg.files.dicom import DicomSeries, check_regular_stack, find_series, has_dicom, read_series, select_series
from lgeseg.files.dicom_study import pick_series


@dataclasses.dataclass(frozen=True)
class InputCase:
    """One case to predict.

    Attributes:
        case_id: output name (``<case_id>.nii.gz``): the file name without ending and ``_NNNN`` suffix,
            or the DICOM series' name.
        paths: one image per channel, in channel order (a DICOM series: its slice files).
        series: the DICOM series, or None for image files.
    """

    case_id: str
    paths: tuple[Path, ...]
    series: DicomSeries | None = None


def check_folders(input_dir: Path, output_dir: Path) -> None:
    """Refuse a missing input folder and an output folder equal to or inside the input folder.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> check_folders(Path(tmp.name), Path(tmp.name) / "predictions")
        Traceback (most recent call last):
        ValueError: ...: the output folder must not be the input folder or inside it (...); inputs are never overwritten
        >>> check_folders(Path(tmp.name), Path(tmp.name).parent / "predictions")  # passes: returns None
        >>> tmp.cleanup()
    """
    if not input_dir.is_dir():
        raise FileNotFoundError(f"{input_dir}: input folder not found")
    inp, out = input_dir.resolve(), output_dir.resolve()
    if out == inp or inp in out.parents:
        raise ValueError(f"{output_dir}: the output folder must not be the input folder or inside it "
                         f"({input_dir}); inputs are never overwritten")


def list_input_cases(input_dir: str | Path, series: list[str] | None = None) -> list[InputCase]:
    """Group the images of ``input_dir`` into cases.

    ``<case>_0000.nii.gz``, ``<case>_0001.nii.gz`` ... are the channels of ``<case>``; a file without
    the ``_NNNN`` suffix is a single-channel case. Hidden files and unsupported endings are ignored.
    A folder without such images but with DICOM series (searched recursively) gives one case per
    series (``lgeseg.files.dicom``); ``series`` picks some of them (UID, number or description pattern),
    without it the study's short-axis LGE stacks are taken (``dicom_study.pick_series``).

    Returns:
        Cases sorted by id (DICOM: by series number). Raises ``ValueError`` naming the case when its
        channel numbers are not 0, 1, ... without gaps, and ``FileNotFoundError`` when the folder
        holds no image or an image name is a symbolic link that leads nowhere (dangling or looping).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for name in ("p1_0000.nii.gz", "p1_0001.nii.gz", "p2.nii.gz", "notes.txt"):
        ...     (Path(tmp.name) / name).touch()
        >>> [(case.case_id, [p.name for p in case.paths]) for case in list_input_cases(tmp.name)]
        [('p1', ['p1_0000.nii.gz', 'p1_0001.nii.gz']), ('p2', ['p2.nii.gz'])]
        >>> tmp.cleanup()
    """
    input_dir = Path(input_dir)
    channels = _image_files(input_dir)
    if not channels and has_dicom(input_dir):
        found = find_series(input_dir)
        chosen = select_series(found, series) if series else pick_series(found)
        return [InputCase(s.case_id, s.files, s) for s in chosen]
    if series:
        raise ValueError(f"{input_dir}: --series picks DICOM series, but the folder holds image files")
    if not channels:
        raise FileNotFoundError(f"{input_dir}: no images found (expected .nii.gz, .nii, .mha or .nrrd files, "
                                "or DICOM series)")
    cases = []
    for case_id, by_channel in sorted(channels.items()):
        if sorted(by_channel) != list(range(len(by_channel))):
            raise ValueError(f"{input_dir}: case {case_id} has channels {sorted(by_channel)}; expected "
                             f"_0000 .. _{len(by_channel) - 1:04d} without gaps")
        cases.append(InputCase(case_id, tuple(by_channel[c] for c in sorted(by_channel))))
    return cases


def _image_files(input_dir: Path) -> dict[str, dict[int, Path]]:
    """case id -> channel -> image file, for the image files directly in ``input_dir``."""
    channels: dict[str, dict[int, Path]] = {}
    for path in sorted(input_dir.iterdir()):
        if path.name.startswith(".") or not io.file_ending(path):
            continue
        if path.is_symlink() and not path.exists():  # exists() follows the link: False when dangling or looping
            raise FileNotFoundError(f"{path}: a symbolic link to {os.readlink(path)!r} that leads to no file (the "
                                    "target is missing, or the link loops); fix or remove the link")
        if not path.is_file():
            continue
        case_id, channel = split_channel_suffix(path)
        index = 0 if channel is None else channel
        if index in channels.get(case_id, {}):
            raise ValueError(f"{path}: case {case_id} has two files for channel {index} "
                             f"(also {channels[case_id][index].name})")
        channels.setdefault(case_id, {})[index] = path
    return channels


def check_case(case: InputCase, channel_names: dict[str, str], allow_unusual_spacing: bool = False) -> None:
    """Read the headers of a case's files and check them against the model's channels.

    Raises ``ValueError`` naming the file when it is unreadable or not 3D, when the number of
    channels differs from the model's ``channel_names``, when a channel's grid differs from channel
    0's, when its spacing is zero, negative or (unless ``allow_unusual_spacing``) implausible
    (``io.spacing_problem``), and ``CorruptFileError`` when a NIfTI file is truncated or damaged, or
    holds NaN/Inf or beyond-float32 values (its bytes are checked here, before any prediction, and
    not again by ``read_case(case, checked=True)``); for a DICOM series, when its slices are not one
    regular stack (from their tags: the pixel data are read once, by ``read_case``).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((2, 8, 8), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> io.write_image(Path(tmp.name) / "p1_0000.nii.gz", np.ones((2, 8, 8), np.float32), geometry)
        >>> case = list_input_cases(tmp.name)[0]
        >>> check_case(case, {"0": "LGE"})  # passes: returns None
        >>> check_case(case, {"0": "LGE", "1": "T2"})
        Traceback (most recent call last):
        ValueError: ...p1_0000.nii.gz: case p1 has 1 channel file(s) but the model expects 2: _0000 (LGE), _0001 (T2)
        >>> tmp.cleanup()
    """
    if case.series is not None:
        if len(channel_names) != 1:
            raise ValueError(f"series {case.case_id}: a DICOM series is one channel, the model expects "
                             f"{len(channel_names)} ({channel_names})")
        check_regular_stack(case.series)
        return
    if len(case.paths) != len(channel_names):
        names = ", ".join(f"_{int(k):04d} ({v})" for k, v in sorted(channel_names.items(), key=lambda kv: int(kv[0])))
        raise ValueError(f"{case.paths[0]}: case {case.case_id} has {len(case.paths)} channel file(s) but the model "
                         f"expects {len(channel_names)}: {names}")
    geometry: CaseGeometry | None = None
    for path in case.paths:
        other, components = io.read_geometry(path)
        if components != 1:
            raise ValueError(f"{path}: expected one value per voxel, found {components}")
        geometry = geometry or other
        problems = io.geometry_mismatch(other, geometry)
        if problems:
            raise ValueError(f"{path}: grid differs from {case.paths[0].name}: {'; '.join(problems)}")
        io.check_image_content(path)  # NIfTI bytes: complete, spacing > 0, finite float32 values
    assert geometry is not None  # a case has at least one file
    problem = io.spacing_problem(geometry.spacing, allow_unusual_spacing)
    if problem:
        raise InvalidInputError(f"{case.paths[0]}: {problem}")


def read_case(case: InputCase, checked: bool = False) -> tuple[np.ndarray, CaseGeometry]:
    """Read all channels of ``case``: returns (float32 (C, Z, Y, X), geometry of channel 0).

    ``checked``: ``check_case`` already passed for ``case``, so its NIfTI files' bytes are not checked
    again (``io.read_image(check_content=False)``); each file is then decompressed for the check once.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((2, 8, 8), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> for channel in range(2):
        ...     array = np.full((2, 8, 8), channel, np.float32)
        ...     io.write_image(Path(tmp.name) / f"p1_000{channel}.nii.gz", array, geometry)
        >>> image, read_geometry = read_case(list_input_cases(tmp.name)[0])
        >>> image.dtype, image.shape, float(image[1].max())  # (C, z, y, x)
        (dtype('float32'), (2, 2, 8, 8), 1.0)
        >>> tmp.cleanup()
    """
    if case.series is not None:
        array, geometry = read_series(case.series)
        return array[None], geometry
    arrays, geometry = [], None
    for path in case.paths:
        array, this = io.read_image(path, check_content=not checked)
        arrays.append(array)
        geometry = geometry or this
    assert geometry is not None  # a case has at least one file
    return (arrays[0][None] if len(arrays) == 1 else np.stack(arrays)), geometry


def select_part(cases: list[InputCase], num_parts: int, part_id: int) -> list[InputCase]:
    """The cases of part ``part_id`` of ``num_parts``: every ``num_parts``-th case from ``part_id`` (nnU-Net's split).

    Runs with ``part_id`` 0 .. ``num_parts - 1`` over one folder predict each case exactly once. Raises
    ``ValueError`` when ``num_parts < 1`` or ``part_id`` is outside 0 .. ``num_parts - 1``.

    Example:
        >>> cases = [InputCase(f"p{i}", ()) for i in range(5)]
        >>> [case.case_id for case in select_part(cases, num_parts=2, part_id=1)]
        ['p1', 'p3']
    """
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise ValueError(f"--part-id must lie in 0 .. --num-parts - 1 with --num-parts >= 1, found part {part_id} "
                         f"of {num_parts}")
    return cases[part_id::num_parts]
