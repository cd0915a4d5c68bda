"""Harmonization by name: ``"histogram"`` or ``"cyclegan:GAN_DIR"``, in memory or over a folder of files.

``lgeseg_predict --harmonize SPEC`` calls ``make_harmonizer`` once and the returned function per
case; ``lgeseg_harmonize`` writes harmonized image files on the input's exact grid.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lgeseg.core.errors import InvalidInputError, OutputConflictError
from lgeseg.core.records import CaseGeometry
from lgeseg.datasets.layout import split_channel_suffix
from lgeseg.files import io
from lgeseg.harmonization.histogram import (
    DEFAULT_LANDMARKS,
    HistogramReference,
    fit_reference,
    load_reference,
    match_channels,
    match_histogram,
    write_reference,
)
from lgeseg.preprocessing import load_preprocessed

logger = logging.getLogger(__name__)

#: (images (C, z, y, x), geometry) -> harmonized images (C, z, y, x), same grid.
Harmonizer = Callable[[np.ndarray, CaseGeometry], np.ndarray]


def make_harmonizer(spec: str, model_dir: str | Path | None = None, device: str = "cpu",
                    direction: str = "target-to-source") -> Harmonizer:
    """Load what a harmonization needs once and return a function that applies it.

    Args:
        spec: ``"histogram"`` (reference from ``model_dir/harmonization_reference.json``),
            ``"cyclegan:GAN_DIR"`` (the GAN's ``direction`` generator) or ``"none"``.
        model_dir: the segmentation model folder (needed for ``"histogram"``).
        device: torch device for the CycleGAN generator.
        direction: CycleGAN direction; the default maps the unseen center onto the training center.

    Returns:
        harmonizer: (C, z, y, x) float32 images + geometry -> (C, z, y, x) float32 on the same grid.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import synthesize_case, tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> train = tiny_dataset(tmp.name, cases=2)
        >>> _ = fit_reference_from_files(train / "imagesTr", Path(tmp.name) / "model")
        >>> harmonize = make_harmonizer("histogram", Path(tmp.name) / "model")  # reads the reference once
        >>> case = synthesize_case(2, index=0, seed=0, in_plane_size=32)  # a case of another center
        >>> harmonize(case.image[None], case.geometry).shape  # (C, z, y, x)
        (1, 2, 32, 32)
        >>> tmp.cleanup()
    """
    if spec == "none":
        return lambda images, geometry: np.asarray(images, dtype=np.float32)
    if spec == "histogram":
        if model_dir is None:
            raise ValueError("harmonization 'histogram' needs the model folder holding harmonization_reference.json")
        references = load_reference(model_dir)
        return lambda images, geometry: match_channels(images, references)
    if spec.startswith("cyclegan:") and len(spec) > len("cyclegan:"):
        # deferred: torch loads only for a CycleGAN spec, not for histogram matching
        from lgeseg.harmonization.translate import load_translator, translate_image

        translator = load_translator(spec[len("cyclegan:"):], direction=direction, device=device)
        return lambda images, geometry: translate_image(images, geometry, translator)
    raise ValueError(f"harmonization: expected 'histogram', 'cyclegan:GAN_DIR' or 'none', found '{spec}'")


def apply_harmonization(images: np.ndarray, geometry: CaseGeometry, spec: str,
                        model_dir: str | Path | None = None) -> np.ndarray:
    """Harmonize one image in memory (loads the reference or GAN each call; see ``make_harmonizer`` for many).

    Args:
        images: (C, z, y, x) raw intensities.
        geometry: the image's geometry.
        spec: ``"histogram"``, ``"cyclegan:GAN_DIR"`` or ``"none"``.
        model_dir: segmentation model folder (for ``"histogram"``).

    Returns:
        float32 (C, z, y, x), same grid as the input.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import synthesize_case, tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> train = tiny_dataset(tmp.name, cases=2)
        >>> _ = fit_reference_from_files(train / "imagesTr", Path(tmp.name) / "model")
        >>> case = synthesize_case(2, index=0, seed=0, in_plane_size=32)
        >>> matched = apply_harmonization(case.image[None], case.geometry, "histogram", Path(tmp.name) / "model")
        >>> matched.shape, matched.dtype
        ((1, 2, 32, 32), dtype('float32'))
        >>> tmp.cleanup()
    """
    return make_harmonizer(spec, model_dir)(images, geometry)


def image_files(path: str | Path) -> list[Path]:
    """The image files of ``path`` (a file, or a folder's files with a supported ending), sorted.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(tmp.name, cases=2)
        >>> [p.name for p in image_files(raw / "imagesTr")]
        ['c1_000_0000.nii.gz', 'c1_001_0000.nii.gz']
        >>> tmp.cleanup()
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and io.file_ending(p))
    if not files:
        raise FileNotFoundError(f"{path}: no image files ({', '.join(io.SUPPORTED_ENDINGS)})")
    return files


def channel_of(path: Path) -> int:
    """Channel index from an nnU-Net file name (``case_0001.nii.gz`` -> 1); 0 without a suffix.

    Example:
        >>> channel_of(Path("c1_000_0001.nii.gz")), channel_of(Path("c1_000.nii.gz"))
        (1, 0)
    """
    channel = split_channel_suffix(path)[1]
    return 0 if channel is None else channel


def _file_harmonizer(spec: str, model_dir: str | Path | None, device: str,
                     direction: str) -> Callable[[np.ndarray, CaseGeometry, int], np.ndarray]:
    """(image (z, y, x), geometry, channel) -> harmonized (z, y, x), for one-channel-per-file folders."""
    if spec == "histogram":
        if model_dir is None:
            raise ValueError("harmonization 'histogram' needs the model folder holding harmonization_reference.json")
        references = load_reference(model_dir)

        def match(image: np.ndarray, geometry: CaseGeometry, channel: int) -> np.ndarray:
            if channel >= len(references):
                raise ValueError(f"channel {channel} has no histogram reference ({len(references)} channel(s))")
            return match_histogram(image, references[channel])

        return match
    harmonizer = make_harmonizer(spec, model_dir, device=device, direction=direction)
    return lambda image, geometry, channel: harmonizer(image[None], geometry)[0]


def harmonize_files(input_path: str | Path, output_dir: str | Path, spec: str, model_dir: str | Path | None = None,
                    device: str = "cpu", direction: str = "target-to-source", overwrite: bool = False) -> list[Path]:
    """Harmonize every image file of ``input_path``; write each, same name and exact grid, into ``output_dir``.

    Args:
        input_path: an image file or a folder of them (nnU-Net layout: one channel per file, ``_XXXX``
            suffix picks the histogram reference channel).
        output_dir: folder for the harmonized images (float32); not the input folder (nor the folder of an
            input file), nor inside it.
        spec, model_dir, device, direction: as for ``make_harmonizer`` (CycleGANs here must be one-channel).
        overwrite: replace output files of the same names that are already there (otherwise refused).

    Returns:
        written paths. Raises ``ValueError`` naming the folders when the output would replace an input,
        ``OutputConflictError`` naming an existing output file, and ``InvalidInputError`` naming a
        complex-valued (or vector) image; all before anything is written.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import generate_multicenter
        >>> tmp = tempfile.TemporaryDirectory()
        >>> train, unseen = generate_multicenter(tmp.name, cases_per_center=2, centers=(1, 2), in_plane_size=32)
        >>> model, out = Path(tmp.name) / "model", Path(tmp.name) / "harmonized"
        >>> _ = fit_reference_from_files(train / "imagesTr", model)
        >>> written = harmonize_files(unseen / "imagesTr", out, "histogram", model_dir=model)
        >>> [p.name for p in written]
        ['c2_000_0000.nii.gz', 'c2_001_0000.nii.gz']
        >>> harmonize_files(unseen / "imagesTr", unseen / "imagesTr", "histogram", model_dir=model)
        Traceback (most recent call last):
        ValueError: ...: the output folder must not be the input folder or inside it (...); inputs are never ...
        >>> tmp.cleanup()
    """
    output_dir = Path(output_dir)
    files = image_files(input_path)
    check_output_folder(input_path, output_dir, files, overwrite)
    for path in files:  # headers only: a complex or vector image is refused before anything is written
        _check_one_value_per_voxel(path)
    harmonize = _file_harmonizer(spec, model_dir, device, direction)
    written = []
    for path in tqdm(files, desc=f"harmonize ({spec.split(':')[0]})", disable=None):
        image, geometry = _read_real_image(path)
        try:
            out = harmonize(image, geometry, channel_of(path))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        target = output_dir / path.name
        io.write_image(target, np.asarray(out, dtype=np.float32), geometry)
        written.append(target)
    return written


def check_output_folder(input_path: str | Path, output_dir: str | Path, files: Sequence[Path],
                        overwrite: bool = False) -> None:
    """Refuse an output folder that would replace an input or, unless ``overwrite``, an existing file.

    The output folder must be neither the input folder nor inside it (for a single input file: not the
    file's folder), and with ``overwrite`` False none of ``output_dir/<name of an input file>`` may exist.

    Example:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> check_output_folder(tmp / "in", tmp / "out", [tmp / "in" / "a_0000.nii.gz"])  # passes: returns None
        >>> check_output_folder(tmp / "in", tmp / "in" / "matched", [tmp / "in" / "a_0000.nii.gz"])
        Traceback (most recent call last):
        ValueError: ...: the output folder must not be the input folder or inside it (...); inputs are never ...
        >>> import shutil; shutil.rmtree(tmp)
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    single_file = input_path.is_file()
    folder = input_path.parent if single_file else input_path
    inp, out = folder.resolve(), output_dir.resolve()
    if out == inp or (inp in out.parents and not single_file):
        raise ValueError(f"{output_dir}: the output folder must not be the input folder or inside it ({folder}); "
                         "inputs are never overwritten: choose another output folder")
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputConflictError(f"{output_dir}: exists and is a file; the output must be a folder")
    existing = [output_dir / p.name for p in files if (output_dir / p.name).exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise OutputConflictError(f"{existing[0]}{more}: already exist(s) in the output folder; use --overwrite to "
                                  "replace them, or choose another output folder")


def _check_one_value_per_voxel(path: Path) -> None:
    components = io.read_geometry(path)[1]
    if components != 1:
        raise InvalidInputError(f"{path}: {components} values per voxel (a complex-valued or vector image); "
                                "harmonization needs one real intensity per voxel: save the magnitude image "
                                "(e.g. numpy.abs) and harmonize that")


def _read_real_image(path: Path) -> tuple[np.ndarray, CaseGeometry]:
    """``io.read_image``, refusing a complex-valued image (it would silently lose its imaginary part)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        try:
            return io.read_image(path)
        except np.exceptions.ComplexWarning as err:
            raise InvalidInputError(f"{path}: complex-valued image; harmonization needs real intensities: save "
                                    "the magnitude image (e.g. numpy.abs) and harmonize that") from err


def _fit_and_write(by_channel: dict[int, list[Path]], model_dir: str | Path, landmarks: Sequence[float],
                   source: str) -> list[HistogramReference]:
    if not by_channel:
        raise FileNotFoundError(f"{source}: no training images found to fit the histogram reference")
    if sorted(by_channel) != list(range(len(by_channel))):
        raise ValueError(f"{source}: channels {sorted(by_channel)} found; expected 0..{len(by_channel) - 1}")
    references = []
    for channel in range(len(by_channel)):
        paths = tqdm(by_channel[channel], desc=f"fit histogram reference (channel {channel})", disable=None)
        references.append(fit_reference((io.read_image(p)[0] for p in paths), landmarks=landmarks))
    path = write_reference(model_dir, references)
    logger.info("wrote %s (%d channel(s))", path, len(references))
    return references


def fit_reference_from_preprocessed(pre_dir: str | Path | Sequence[str | Path], model_dir: str | Path,
                                    datasets: Sequence[str] | None = None, case_ids: Sequence[str] | None = None,
                                    landmarks: Sequence[float] = DEFAULT_LANDMARKS) -> list[HistogramReference]:
    """Fit the reference from the raw images behind preprocessed training cases; write it into ``model_dir``.

    The trainer calls this once per model folder, so ``--harmonize histogram`` works on every model.

    Args:
        pre_dir: preprocessed folder ``PRE``, or several (a model trained on more than one).
        model_dir: model folder receiving ``harmonization_reference.json``.
        datasets: dataset subfolders (None: all); each is looked for in every folder.
        case_ids: only these cases (e.g. the training split); None for all.
        landmarks: percentiles (0..100) used as landmarks.

    Returns:
        the references, in channel order. Raises ``FileNotFoundError`` naming a raw image that moved.

    Example:
        >>> import tempfile
        >>> from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = Path(tempfile.mkdtemp())
        >>> raw = tiny_dataset(tmp / "raw", cases=2)
        >>> _ = plan_and_preprocess([raw], tmp / "pre", preset="cpu")
        >>> references = fit_reference_from_preprocessed(tmp / "pre", tmp / "model", case_ids=["c1_000"])
        >>> len(references), references[0].num_images
        (1, 1)
        >>> import shutil; shutil.rmtree(tmp)
    """
    folders = [Path(pre_dir)] if isinstance(pre_dir, (str, Path)) else [Path(p) for p in pre_dir]
    wanted = set(case_ids) if case_ids is not None else None
    by_channel: dict[int, list[Path]] = {}
    records = []
    for folder in folders:
        present = None if not datasets else [d for d in datasets if (folder / d).is_dir()]
        if present != []:
            records += [record for record, _ in load_preprocessed(folder, present)]
    for record in records:
        if wanted is not None and record.case_id not in wanted:
            continue
        images = [Path(f) for f in record.source_files if _is_image_of(f, record.case_id)]
        for path in images:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: raw image of case {record.case_id} not found (moved?); fit the "
                                        f"reference from the images instead: lgeseg_harmonize fit-reference -i ...")
            by_channel.setdefault(channel_of(path), []).append(path)
    return _fit_and_write(by_channel, model_dir, landmarks, ", ".join(str(f) for f in folders))


def _is_image_of(path: str | Path, case_id: str) -> bool:
    """True for ``<case_id>_<4 digits>`` (an image channel), false for the label ``<case_id>`` even when the
    case id itself ends in ``_<4 digits>`` (``myops_3016.nii.gz`` is a label, not channel 3016 of ``myops``)."""
    case, channel = split_channel_suffix(path)
    return channel is not None and case == case_id


def fit_reference_from_files(input_path: str | Path, model_dir: str | Path,
                             landmarks: Sequence[float] = DEFAULT_LANDMARKS) -> list[HistogramReference]:
    """Fit one ``HistogramReference`` per channel from training image files and write it into ``model_dir``.

    Args:
        input_path: a folder of images (e.g. ``RAW/imagesTr``; channel from the ``_XXXX`` suffix) or one file.
        model_dir: model folder receiving ``harmonization_reference.json``.
        landmarks: percentiles (0..100) to use as landmarks.

    Returns:
        the references, in channel order.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> train = tiny_dataset(tmp.name, cases=2)
        >>> references = fit_reference_from_files(train / "imagesTr", Path(tmp.name) / "model")
        >>> len(references), references[0].num_images, sorted(p.name for p in (Path(tmp.name) / "model").iterdir())
        (1, 2, ['harmonization_reference.json'])
        >>> tmp.cleanup()
    """
    by_channel: dict[int, list[Path]] = {}
    for path in image_files(input_path):
        by_channel.setdefault(channel_of(path), []).append(path)
    return _fit_and_write(by_channel, model_dir, landmarks, str(input_path))
