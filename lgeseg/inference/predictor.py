"""Segment a folder of images with one or several trained models (``lgeseg_predict``).

For each case: read the channels, optionally harmonize, preprocess with the model's plan (the same
code path as training), predict slice by slice (``sliding_window.predict_slices``), average the
probabilities of all models, put them back on the raw grid (``preprocessing.revert_to_original``),
take the argmax, postprocess, and write ``<case>.nii.gz`` with exactly the input's shape, spacing,
origin and direction. Every input header is checked before anything is predicted, and every file
is written atomically, so an error never leaves half a file behind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lgeseg import io
from lgeseg.atomic import atomic_output, remove_stale_temporaries
from lgeseg.device import resolve_device
from lgeseg.inference.inputs import InputCase, check_case, check_folders, list_input_cases, read_case
from lgeseg.inference.output_folder import (
    check_provenance,
    check_writable,
    lock_output_folder,
    model_identity,
    provenance_record,
)
from lgeseg.inference.overlays import write_overlay
from lgeseg.inference.quality import (
    CaseQuality,
    MirrorAgreement,
    assess_segmentation,
    is_constant_image,
    write_quality_report,
)
from lgeseg.inference.sliding_window import predict_slices, prepare_for_inference
from lgeseg.model_folder import LoadedModel, find_checkpoint, load_model
from lgeseg.postprocessing import apply_postprocessing
from lgeseg.records import CaseGeometry, PreprocessedCase

logger = logging.getLogger(__name__)


#: Largest whole slice (pixels) predicted in one pass; bigger slices use sliding-window tiles.
MAX_WHOLE_SLICE = 512 * 512
#: Inference strategies (``predict_volume``'s ``window``).
WINDOWS = ("roi", "sliding", "slice")


def _preprocessing_key(model: LoadedModel) -> tuple:
    plan = model.plan
    return (tuple(plan.target_spacing), plan.normalization.to_dict(), plan.image_interpolation_order,
            tuple(sorted(plan.labels.items())), tuple(sorted(model.info.channel_names.items())))


def load_models(model_dirs: Sequence[str | Path], device: torch.device, checkpoint: str = "final") -> list[LoadedModel]:
    """Load every model folder for inference and check they can be ensembled.

    Returns the models (networks in eval mode on ``device``, see ``prepare_for_inference``). Raises
    ``FileNotFoundError``/``ValueError`` naming the folder for a missing or incomplete model folder,
    and ``ValueError`` when two models preprocess differently (target spacing, normalization,
    interpolation, labels or channels) and so cannot share one prediction.
    """
    if not model_dirs:
        raise ValueError("no model folder given (use -m MODEL_DIR)")
    models = []
    for model_dir in model_dirs:
        model = load_model(model_dir, device=device, checkpoint=checkpoint)
        prepare_for_inference(model.network, device)
        if models and _preprocessing_key(model) != _preprocessing_key(models[0]):
            raise ValueError(f"{model_dir}: cannot be ensembled with {models[0].model_dir}: their plans preprocess "
                             "differently (target spacing, normalization, interpolation, labels or channels)")
        models.append(model)
    return models


def _record(case_id: str, geometry: CaseGeometry, crop_box: Sequence[Sequence[int]],
            shape_after_crop: Sequence[int], shape_after: Sequence[int]) -> PreprocessedCase:
    spacing_after = tuple(float(s) * c / a for s, c, a in zip(geometry.spacing, shape_after_crop, shape_after,
                                                                 strict=True))
    return PreprocessedCase(
        case_id=case_id, dataset="", center=None, original=geometry,
        crop_box=tuple((int(a), int(b)) for a, b in crop_box), shape_after_crop=tuple(int(v) for v in shape_after_crop),
        spacing_after_resampling=spacing_after, shape_after_resampling=tuple(int(v) for v in shape_after),
    )


def inference_window(model: LoadedModel, slice_shape: Sequence[int], window: str) -> tuple[int, int]:
    """The (py, px) input size of one forward pass for slices of ``slice_shape`` (y, x) voxels.

    ``window="slice"`` (and the localizing pass of ``"roi"``): the whole slice, zero-padded up to the
    network's divisor, so each slice takes one forward pass; slices over ``MAX_WHOLE_SLICE`` pixels
    fall back to tiles. ``window="sliding"``: nnU-Net's Gaussian-weighted tiles of the plan's patch size.
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, found {window!r}")
    patch = tuple(int(v) for v in model.plan.patch_size)
    divisor = getattr(model.network, "divisor", (1, 1))
    whole = tuple(max(p, -(-int(n) // d) * d) for n, d, p in zip(slice_shape, divisor, patch, strict=True))
    if window == "sliding" or whole[0] * whole[1] > MAX_WHOLE_SLICE:
        return patch  # type: ignore[return-value]
    return whole  # type: ignore[return-value]


def predict_volume(image: np.ndarray, geometry: CaseGeometry, models: Sequence[LoadedModel], mirroring: bool = True,
                   step: float = 0.5, batch_size: int | None = None, case_id: str = "case",
                   window: str = "roi", agreement: MirrorAgreement | None = None) -> np.ndarray:
    """Class probabilities of one raw volume, averaged over ``models``.

    Args:
        image: float32 (C, Z, Y, X) raw intensities on the grid described by ``geometry``.
        geometry: the image's geometry (shape (Z, Y, X), spacing mm (z, y, x)).
        models: loaded models with one shared preprocessing (see ``load_models``).
        mirroring: in-plane flip test-time augmentation.
        step: sliding-window stride as a fraction of the patch.
        batch_size: tiles per forward pass (None: a device default).
        case_id: used in log messages and the preprocessing record.
        window: ``"roi"`` (default: localize with whole slices, refine a training-patch-sized box
            around the ventricle), ``"sliding"`` (nnU-Net: training-patch tiles everywhere) or
            ``"slice"`` (whole slices only); see ``sliding_window.predict_slices``.
        agreement: with ``mirroring``, collects how the flipped passes of every model agree with
            their average (``quality.MirrorAgreement``, on the preprocessed grid).

    Returns:
        float32 (K, Z, Y, X) probabilities on the raw grid (background 1 outside the crop box).
    """
    # deferred: lgeseg_predict starts without the preprocessing and planning modules
    from lgeseg.preprocessing import preprocess_arrays, revert_to_original

    plan = models[0].plan
    image_pp, _, crop_box, shape_after_crop = preprocess_arrays(image, geometry, plan)
    tensor = torch.from_numpy(np.ascontiguousarray(image_pp, dtype=np.float32))
    total: np.ndarray | None = None
    for model in models:
        size = inference_window(model, image_pp.shape[2:], window)
        roi_patch = model.plan.patch_size if window == "roi" else None
        probabilities = predict_slices(model.network, tensor, size, step=step, mirroring=mirroring,
                                       batch_size=batch_size, roi_patch=roi_patch, agreement=agreement)
        total = probabilities if total is None else total + probabilities
    assert total is not None  # models is never empty (load_models)
    if len(models) > 1:
        total /= len(models)
    record = _record(case_id, geometry, crop_box, shape_after_crop, image_pp.shape[1:])
    return np.asarray(revert_to_original(total, record), dtype=np.float32)


def _label_lookup(models: Sequence[LoadedModel]) -> np.ndarray:
    """Class index -> label value (classes are the plan's label values in increasing order)."""
    return np.array(sorted(models[0].plan.labels.values()), dtype=np.uint8)


def _background_only(num_classes: int, shape: Sequence[int]) -> np.ndarray:
    """float32 (K, Z, Y, X) probabilities that say background everywhere (the prediction of a blank image)."""
    probabilities = np.zeros((num_classes, *shape), np.float32)
    probabilities[0] = 1.0
    return probabilities


def _save_probabilities(path: Path, probabilities: np.ndarray, labels: dict[str, int]) -> None:
    with atomic_output(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, probabilities=probabilities.astype(np.float32, copy=False),
                            label_values=np.array(sorted(labels.values())),
                            label_names=np.array(sorted(labels, key=labels.get)))


def _harmonize(image: np.ndarray, geometry: CaseGeometry, spec: str, model_dir: Path) -> np.ndarray:
    from lgeseg.harmonization import apply_harmonization  # deferred: it loads SciPy, predict starts without it

    return np.asarray(apply_harmonization(image, geometry, spec, model_dir), dtype=np.float32)


def _outputs_of(case: InputCase, output_dir: Path, save_probabilities: bool, overlays: bool) -> list[Path]:
    paths = [output_dir / f"{case.case_id}.nii.gz"]
    if save_probabilities:
        paths.append(output_dir / f"{case.case_id}.npz")
    if overlays:
        paths.append(output_dir / f"{case.case_id}_overlay.png")
    return paths


def predict_folder(input_dir: str | Path, output_dir: str | Path, model_dirs: Sequence[str | Path],
                   device: str | torch.device | None = None, mirroring: bool = True, save_probabilities: bool = False,
                   postprocess: str | None = None, overlays: bool = False, overwrite: bool = False,
                   harmonize: str | None = None, checkpoint: str = "final", step: float = 0.5,
                   batch_size: int | None = None, window: str = "roi",
                   allow_unusual_spacing: bool = False) -> list[Path]:
    """Segment every image of ``input_dir`` and write ``output_dir/<case>.nii.gz`` on the input's exact grid.

    Args:
        input_dir: images (.nii.gz, .nii, .mha, .nrrd), ``<case>_0000.<ending>`` (channels _0000, _0001, ...)
            or ``<case>.<ending>`` for one channel.
        output_dir: destination; must not be ``input_dir`` or inside it.
        model_dirs: one model folder, or several (folds, seeds) to ensemble by averaging probabilities.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ... (None: CUDA when available).
        mirroring: in-plane flip test-time augmentation (4 passes per tile).
        save_probabilities: also write ``<case>.npz`` with ``probabilities`` float32 (K, Z, Y, X).
        postprocess: ``"lcc"``, ``"lcc_per_label"`` or ``"none"``; None applies the first model's choice
            from ``model.json``.
        overlays: also write ``<case>_overlay.png`` (contours over every slice).
        overwrite: redo cases whose outputs exist. Otherwise they are skipped, but only when
            ``output_dir/lgeseg_predictions.json`` says the same models and settings made them; a folder
            made by other models or settings is refused (``OutputConflictError``).
        harmonize: ``"histogram"`` or ``"cyclegan:GAN_DIR"`` (see ``lgeseg.harmonization``), or None.
        checkpoint: ``"final"`` (falls back to best, then latest) or ``"best"``.
        step: sliding-window stride as a fraction of the patch.
        batch_size: tiles per forward pass (None: a device default).
        window: ``"roi"`` (default), ``"sliding"`` (nnU-Net) or ``"slice"`` (whole slices); see ``predict_volume``.
        allow_unusual_spacing: accept spacing outside ``io.IN_PLANE_SPACING_MM``/``THROUGH_PLANE_SPACING_MM``
            (zero or negative spacing is refused always).

    Every predicted case is also checked (``quality.assess_segmentation``: mirror disagreement, myocardium
    missing on a slice, thin wall, implausible volume, empty prediction, constant input) and the records
    are written to ``output_dir/qc.csv`` and ``qc.json`` (records of skipped cases already there are kept).
    A constant input image (all zero, blank) is not given to the network: its prediction is empty
    (all background), with a warning and the ``input_constant`` flag in ``qc.csv``.

    The output folder is locked while the run writes (``.lgeseg_predict.lock``; a second run is refused
    with ``FolderLockedError`` naming the first one's pid), temporary files left by a killed run are
    removed, and a read-only folder is reported before any inference (see ``output_folder``).

    Returns:
        The label maps written, in case order (skipped cases are not included). Raises
        ``FileNotFoundError``/``ValueError`` naming the file or folder for a bad model folder,
        unreadable input or channel mismatch; all inputs are checked before the first prediction.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, found {window!r}")
    check_folders(input_dir, output_dir)
    if postprocess is not None:
        apply_postprocessing(np.zeros((1, 1, 1), np.uint8), postprocess)  # names the valid choices if unknown
    models = load_models(model_dirs, resolve_device(device), checkpoint)
    variant = postprocess or models[0].info.postprocessing
    cases = list_input_cases(input_dir)
    geometries = {case.case_id: check_case(case, models[0].info.channel_names, allow_unusual_spacing)
                  for case in cases}
    settings = {"checkpoint": checkpoint, "mirroring": mirroring, "window": window, "step": step,
                "postprocess": variant, "harmonize": harmonize}
    output_dir.mkdir(parents=True, exist_ok=True)
    check_writable(output_dir)  # a read-only folder fails here, before any inference
    with lock_output_folder(output_dir):
        remove_stale_temporaries(output_dir)
        return _predict_cases(cases, output_dir, models, geometries, variant, settings, overwrite,
                              batch_size, save_probabilities, overlays)


def _predict_cases(cases: Sequence[InputCase], output_dir: Path, models: Sequence[LoadedModel],
                   geometries: dict[str, CaseGeometry], variant: str, settings: dict, overwrite: bool,
                   batch_size: int | None, save_probabilities: bool, overlays: bool) -> list[Path]:
    """Check the folder's provenance, skip finished cases, predict the others (holding the folder's lock)."""
    mirroring, step, window, harmonize = (settings[k] for k in ("mirroring", "step", "window", "harmonize"))
    outputs = {c.case_id: _outputs_of(c, output_dir, save_probabilities, overlays) for c in cases}
    identities = [model_identity(m.model_dir, find_checkpoint(m.model_dir, settings["checkpoint"])) for m in models]
    check_provenance(output_dir, provenance_record(identities, settings), overwrite,
                     outputs_exist=any(p.exists() for paths in outputs.values() for p in paths))
    todo = [c for c in cases if overwrite or not all(p.exists() for p in outputs[c.case_id])]
    if len(todo) < len(cases):
        logger.info("%d case(s) already predicted in %s by the same model and settings, skipped (use --overwrite)",
                    len(cases) - len(todo), output_dir)
    lookup = _label_lookup(models)
    written = []
    for case in tqdm(todo, desc="predict", unit="case"):
        target, quality = _predict_case(case, output_dir, models, geometries[case.case_id], variant, lookup,
                                        mirroring=mirroring, step=step, batch_size=batch_size, window=window,
                                        harmonize=harmonize, save_probabilities=save_probabilities,
                                        overlays=overlays)
        write_quality_report([quality], output_dir)  # after every case: the report matches what is on disk
        written.append(target)
    return written


def _predict_case(case: InputCase, output_dir: Path, models: Sequence[LoadedModel], geometry: CaseGeometry,
                  variant: str, lookup: np.ndarray, *, mirroring: bool, step: float, batch_size: int | None,
                  window: str, harmonize: str | None, save_probabilities: bool,
                  overlays: bool) -> tuple[Path, CaseQuality]:
    """Predict one case and write its outputs; returns the label map's path and the case's quality record."""
    image, geometry_read = read_case(case)
    input_constant = is_constant_image(image)
    if harmonize:
        image = _harmonize(image, geometry_read, harmonize, models[0].model_dir)
    agreement = MirrorAgreement()
    if input_constant:
        # A blank image has no ventricle: the network would still label noise-free garbage confidently.
        logger.warning("%s: the image is constant (every voxel %g): written as an empty prediction and flagged "
                       "input_constant in qc.csv", case.paths[0], float(np.nanmax(image)) if image.size else 0.0)
        probabilities = _background_only(len(lookup), image.shape[1:])
    else:
        probabilities = predict_volume(image, geometry_read, models, mirroring, step, batch_size, case.case_id,
                                       window, agreement=agreement)
    segmentation = apply_postprocessing(lookup[np.argmax(probabilities, axis=0)], variant)
    target = output_dir / f"{case.case_id}.nii.gz"
    io.write_label(target, segmentation, geometry)
    if save_probabilities:
        _save_probabilities(output_dir / f"{case.case_id}.npz", probabilities, models[0].plan.labels)
    if overlays:
        write_overlay(output_dir / f"{case.case_id}_overlay.png", image[0], segmentation, geometry_read.spacing,
                      title=case.case_id)
    disagreement = 0.0 if input_constant else agreement.disagreement()  # an empty prediction is flip-invariant
    quality = assess_segmentation(segmentation, geometry_read.spacing, case.case_id, disagreement, input_constant)
    return target, quality
