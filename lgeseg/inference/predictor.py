"""Segment a folder of images with one or several trained models (``lgeseg_predict``).

For each case: read the channels, optionally harmonize, preprocess with the model's plan (the same
code path as training), predict slice by slice (``sliding_window.predict_slices``), average the
probabilities of all models, put them back on the raw grid (``preprocessing.revert_to_original``),
take the argmax, postprocess, and write ``<case>.nii.gz`` with exactly the input's shape, spacing,
origin and direction. Every input header is checked before anything is predicted, and every file
is written atomically, so an error never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lgeseg.core.atomic import remove_stale_temporaries
from lgeseg.core.device import resolve_device
from lgeseg.core.records import CaseGeometry, PreprocessedCase, load_json, save_json
from lgeseg.evaluation.postprocessing import apply_postprocessing
from lgeseg.files import io
from lgeseg.files.dicom_seg import require_dicom_seg, write_dicom_seg
from lgeseg.inference.adaptation import DEFAULT_LR, DEFAULT_STEPS, AdaptationSettings, adapted
from lgeseg.inference.input_cases import (
    InputCase,
    check_case,
    check_folders,
    list_input_cases,
    read_case,
    select_part,
)
from lgeseg.inference.nnunet_files import check_consecutive_labels, write_case_probabilities, write_ensemble_metadata
from lgeseg.inference.nnunet_model import load_nnunet_model, nnunet_fold_folders, nnunet_training_folder
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
    read_quality_report,
    write_quality_report,
)
from lgeseg.inference.sliding_window import check_step, predict_slices, prepare_for_inference
from lgeseg.model.folder import LoadedModel, find_checkpoint, load_model
from lgeseg.model.registry import resolve_model, resolve_model_folders

logger = logging.getLogger(__name__)


#: Largest whole slice (pixels) predicted in one pass; bigger slices use sliding-window tiles.
MAX_WHOLE_SLICE = 512 * 512
#: Inference strategies (``predict_volume``'s ``window``).
WINDOWS = ("roi", "sliding", "slice")


def inference_device(device: str | torch.device | None) -> torch.device:
    """``device.resolve_device`` for ``--device``, with an unknown name refused as a ``ValueError`` naming it.

    Example:
        >>> inference_device("cpu")
        device(type='cpu')
        >>> inference_device("quantum")
        Traceback (most recent call last):
        ValueError: --device 'quantum': not a torch device; expected cpu, cuda, cuda:N (a GPU's index) or mps
    """
    try:
        return resolve_device(device)
    except RuntimeError as err:  # torch.device("quantum") says "Expected one of cpu, cuda, ..., found quantum"
        raise ValueError(f"--device {str(device)!r}: not a torch device; expected cpu, cuda, cuda:N (a GPU's index) "
                         "or mps") from err


def _preprocessing_key(model: LoadedModel) -> tuple:
    plan = model.plan
    return (tuple(plan.target_spacing), plan.normalization.to_dict(), plan.image_interpolation_order,
            tuple(sorted(plan.labels.items())), tuple(sorted(model.info.channel_names.items())))


def load_models(model_dirs: Sequence[str | Path], device: torch.device, checkpoint: str = "final") -> list[LoadedModel]:
    """Load every model folder for inference and check they can be ensembled.

    A folder of an nnU-Net training (``fold_<k>`` of ``<trainer>__<plans>__2d``) is loaded with
    ``nnunet_model.load_nnunet_model``. Returns the models (networks in eval mode on ``device``, see
    ``prepare_for_inference``). Raises
    ``FileNotFoundError``/``ValueError`` naming the folder for a missing or incomplete model folder,
    and ``ValueError`` when two models preprocess differently (target spacing, normalization,
    interpolation, labels or channels) and so cannot share one prediction.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = tempfile.TemporaryDirectory()  # an untrained model folder; a trained one loads the same way
        >>> models = load_models([write_untrained_model(tmp.name)], torch.device("cpu"))
        >>> len(models), models[0].network.training  # several folders (-m A B): an ensemble
        (1, False)
        >>> tmp.cleanup()
    """
    if not model_dirs:
        raise ValueError("no model folder given (use -m MODEL_DIR)")
    models = []
    for model_dir in model_dirs:
        if nnunet_training_folder(model_dir) is not None:
            model = load_nnunet_model(model_dir, device=device, checkpoint=checkpoint)
        else:
            model = load_model(model_dir, device=device, checkpoint=checkpoint)
        prepare_for_inference(model.network, device)
        if models and _preprocessing_key(model) != _preprocessing_key(models[0]):
            raise ValueError(f"{model_dir}: cannot be ensembled with {models[0].model_dir}: their plans preprocess "
                             "differently (target spacing, normalization, interpolation, labels or channels)")
        models.append(model)
    return models


def fold_model_folders(model_dirs: Sequence[str | Path], folds: Sequence[str] | None) -> list[Path]:
    """The model folders to ensemble: ``-m`` names and folders resolved, folds picked (nnU-Net's ``-f 0 1 2``).

    Args:
        model_dirs: what ``-m`` gave: model folders, ensemble folders (``fold_<k>`` members), the
            names of installed or shipped models (``lge-lv``; ``lgeseg.model.registry``) or nnU-Net
            training folders (``nnunet_model.nnunet_fold_folders``).
        folds: fold names (``"0"``, ``"1"``, ..., ``"all"``) or None (every member of each).

    Returns:
        Without folds, every member model folder of each spec; with folds, ``MODEL/fold_<k>`` for each
        spec and fold. Raises ``FileNotFoundError`` naming the missing folder, fold or name.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for fold in (0, 1):
        ...     _ = write_untrained_model(Path(tmp.name) / f"fold_{fold}", seed=fold)
        >>> chosen, every = fold_model_folders([tmp.name], ["1"]), fold_model_folders([tmp.name], None)
        >>> [p.name for p in chosen], [p.name for p in every]
        (['fold_1'], ['fold_0', 'fold_1'])
        >>> fold_model_folders([tmp.name], ["2"])
        Traceback (most recent call last):
        FileNotFoundError: .../fold_2: fold 2 not found in ... (-f names the fold_<k> subfolders of each -m folder; ...
        >>> tmp.cleanup()
    """
    found: list[Path] = []
    for spec in model_dirs:
        if nnunet_training_folder(spec) is not None:
            found += nnunet_fold_folders(spec, folds)
            continue
        if not folds:
            found += resolve_model_folders([spec])
            continue
        model_dir = resolve_model(spec).path
        for fold in folds:
            folder = Path(model_dir) / f"fold_{fold}"
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: fold {fold} not found in {model_dir} (-f names the fold_<k> "
                                        "subfolders of each -m folder; without -f, -m is the model folder itself)")
            found.append(folder)
    return found


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

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = tempfile.TemporaryDirectory()  # an untrained 3-stage model: slices padded to a multiple of 4
        >>> models = load_models([write_untrained_model(tmp.name, features=(4, 8, 8))], torch.device("cpu"))
        >>> inference_window(models[0], (50, 70), "slice"), inference_window(models[0], (50, 70), "sliding")
        ((52, 72), (32, 32))
        >>> tmp.cleanup()
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
                   window: str = "roi", agreement: MirrorAgreement | None = None,
                   adaptation: AdaptationSettings | None = None) -> np.ndarray:
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
        adaptation: test-time adaptation of each model to this case before it predicts it (TENT's
            entropy minimization on the whole slices, ``adaptation.adapted``; the trained weights are
            restored afterwards); None or method ``"none"``: the trained weights as they are.

    Returns:
        float32 (K, Z, Y, X) probabilities on the raw grid (background 1 outside the crop box).

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = tempfile.TemporaryDirectory()  # an untrained model folder; a trained one loads the same way
        >>> models = load_models([write_untrained_model(tmp.name)], torch.device("cpu"))
        >>> geometry = CaseGeometry((4, 40, 40), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> image = np.random.default_rng(0).random((1, 4, 40, 40), dtype=np.float32)
        >>> probabilities = predict_volume(image, geometry, models, mirroring=False)
        >>> probabilities.shape, bool(np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-4))  # (K, z, y, x), raw grid
        ((3, 4, 40, 40), True)
        >>> tmp.cleanup()
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
        whole_slices = inference_window(model, image_pp.shape[2:], "slice")
        with adapted(model.network, tensor, whole_slices, adaptation or AdaptationSettings(), batch_size, case_id):
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


def _harmonize(image: np.ndarray, geometry: CaseGeometry, spec: str, model_dir: Path) -> np.ndarray:
    from lgeseg.harmonization import apply_harmonization  # deferred: it loads SciPy, predict starts without it

    return np.asarray(apply_harmonization(image, geometry, spec, model_dir), dtype=np.float32)


def output_ending(case: InputCase) -> str:
    """The ending of ``case``'s label map: the input's (``.nii.gz``, ``.nii``, ``.mha``, ``.nrrd``).

    ``.mhd`` inputs (header + separate data file) give ``.mha``, the same format in one file, which
    can be written atomically; DICOM series give ``.nii.gz``.

    Example:
        >>> nifti, metaimage = InputCase("p1", (Path("in/p1_0000.nii.gz"),)), InputCase("p2", (Path("p2.mhd"),))
        >>> output_ending(nifti), output_ending(metaimage)
        ('.nii.gz', '.mha')
    """
    if case.series is not None:
        return ".nii.gz"
    ending = io.file_ending(case.paths[0])
    return ".mha" if ending in ("", ".mhd") else ending


def _outputs_of(case: InputCase, output_dir: Path, save_probabilities: bool, overlays: bool,
                dicom_seg: bool = False) -> list[Path]:
    paths = [output_dir / f"{case.case_id}{output_ending(case)}"]
    if dicom_seg:
        paths.append(output_dir / f"{case.case_id}.seg.dcm")
    if save_probabilities:
        paths += [output_dir / f"{case.case_id}.npz", output_dir / f"{case.case_id}.pkl"]
    if overlays:
        paths.append(output_dir / f"{case.case_id}_overlay.png")
    return paths


def _check_dicom_seg(cases: Sequence[InputCase], labels: dict[str, int], input_dir: Path) -> None:
    require_dicom_seg()
    if not all(case.series for case in cases):
        raise ValueError(f"{input_dir}: --dicom-seg needs DICOM input (a folder of DICOM series)")
    if sorted(labels.values()) != list(range(len(labels))):
        raise ValueError(f"--dicom-seg: the model's labels {labels} must be 0, 1, ..., K-1 (segment numbers)")


def _record_series(output_dir: Path, cases: Sequence[InputCase]) -> None:
    """Write ``dicom_series.json``: which DICOM series each case came from (merged with earlier runs' parts)."""
    path = output_dir / "dicom_series.json"
    known = load_json(path) if path.is_file() else {}
    for case in cases:
        if case.series is not None:
            s = case.series
            known[case.case_id] = {"series_instance_uid": s.uid, "series_number": s.number,
                                   "series_description": s.description, "modality": s.modality,
                                   "folder": str(s.files[0].parent), "num_files": len(s.files)}
    save_json(dict(sorted(known.items())), path)


@dataclasses.dataclass(frozen=True)
class _Export:
    """What turns one case's probabilities into files (run by the export workers)."""

    output_dir: Path
    lookup: np.ndarray
    variant: str
    labels: dict[str, int]
    save_probabilities: bool
    overlays: bool
    dicom_seg: bool = False
    model_name: str = "model"

    def __call__(self, case: InputCase, image: np.ndarray, geometry: CaseGeometry, probabilities: np.ndarray,
                 disagreement: float, input_constant: bool) -> tuple[Path, CaseQuality]:
        """Write the case's outputs; returns the label map's path and the case's quality record."""
        with naming_case(case):
            return self._export(case, image, geometry, probabilities, disagreement, input_constant)

    def _export(self, case: InputCase, image: np.ndarray, geometry: CaseGeometry, probabilities: np.ndarray,
                disagreement: float, input_constant: bool) -> tuple[Path, CaseQuality]:
        segmentation = apply_postprocessing(self.lookup[np.argmax(probabilities, axis=0)], self.variant)
        target = self.output_dir / f"{case.case_id}{output_ending(case)}"
        io.write_label(target, segmentation, geometry)
        if self.save_probabilities:
            write_case_probabilities(self.output_dir, case.case_id, probabilities, geometry, self.labels)
        if self.dicom_seg and case.series is not None:

            write_dicom_seg(self.output_dir / f"{case.case_id}.seg.dcm", segmentation, case.series, self.labels,
                            self.model_name)
        if self.overlays:

            write_overlay(self.output_dir / f"{case.case_id}_overlay.png", image[0], segmentation, geometry.spacing,
                          title=case.case_id)
        quality = assess_segmentation(segmentation, geometry.spacing, case.case_id, disagreement, input_constant)
        return target, quality


@contextlib.contextmanager
def naming_case(case: InputCase) -> Iterator[None]:
    """Re-raise running out of memory inside the block as a ``MemoryError`` that names ``case`` and its file.

    ``MemoryError`` (often without any text) and torch's ``OutOfMemoryError`` say nothing of what was
    being done; the one-line message of ``lgeseg_predict`` (``cli._errors.describe_error``, which adds
    what to do) then names the case to look at.

    Example:
        >>> with naming_case(InputCase("p1", (Path("in/p1_0000.nii.gz"),))):
        ...     raise MemoryError()
        Traceback (most recent call last):
        MemoryError: case p1 (in/p1_0000.nii.gz): no detail
    """
    try:
        yield
    except Exception as err:  # noqa: BLE001 - only running out of memory is translated; the rest re-raised
        out_of_memory = isinstance(err, MemoryError) or any(k.__name__ == "OutOfMemoryError"
                                                            for k in type(err).__mro__)
        if not out_of_memory and not (isinstance(err, RuntimeError) and "out of memory" in str(err)):
            raise
        detail = str(err).strip().splitlines()[0] if str(err).strip() else "no detail"
        where = case.paths[0] if case.series is None else case.paths[0].parent
        raise MemoryError(f"case {case.case_id} ({where}): {detail}") from err


def _read(case: InputCase) -> tuple[np.ndarray, CaseGeometry]:
    with naming_case(case):
        return read_case(case)


def _prefetch(pool: ThreadPoolExecutor, function: Callable[[Any], Any], items: Sequence[Any],
              depth: int) -> Iterator[Any]:
    """Yield ``function(item)`` for each item in order, with up to ``depth`` calls running ahead in ``pool``."""
    queue: deque[Future] = deque()
    for item in items:
        queue.append(pool.submit(function, item))
        if len(queue) > depth:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


def _run_cases(todo: Sequence[InputCase], models: Sequence[LoadedModel], export: _Export, settings: dict[str, Any],
               harmonize: str | None, num_readers: int, num_writers: int) -> list[Path]:
    """Read (``num_readers`` threads ahead), predict (this thread) and export (``num_writers`` threads) ``todo``.

    The quality report is written by this thread after each case's files (in case order), so it always
    matches what is on disk.
    """
    written: list[Path] = []
    pending: deque[Future] = deque()

    def finish(future: Future) -> None:
        target, quality = future.result()
        write_quality_report([quality], export.output_dir)
        written.append(target)

    with ThreadPoolExecutor(num_readers, "lgeseg-read") as readers, \
            ThreadPoolExecutor(num_writers, "lgeseg-export") as writers:
        loaded = _prefetch(readers, _read, todo, num_readers)
        for case, (image, geometry) in tqdm(zip(todo, loaded, strict=True), total=len(todo), desc="predict",
                                            unit="case"):
            input_constant = is_constant_image(image)
            if harmonize:
                image = _harmonize(image, geometry, harmonize, models[0].model_dir)
            agreement = MirrorAgreement()
            if input_constant:
                # A blank image has no ventricle: the network would still label noise-free garbage confidently.
                logger.warning("%s: the image is constant (every voxel %g): written as an empty prediction and "
                               "flagged input_constant in qc.csv", case.paths[0],
                               float(np.nanmax(image)) if image.size else 0.0)
                probabilities = _background_only(len(export.lookup), image.shape[1:])
            else:
                with naming_case(case):
                    probabilities = predict_volume(image, geometry, models, case_id=case.case_id,
                                                   agreement=agreement, **settings)
            disagreement = 0.0 if input_constant else agreement.disagreement()  # empty is flip-invariant
            pending.append(writers.submit(export, case, image, geometry, probabilities, disagreement,
                                          input_constant))
            while len(pending) > num_writers:  # bound the probabilities held in memory
                finish(pending.popleft())
        while pending:
            finish(pending.popleft())
    return written


def predict_folder(input_dir: str | Path, output_dir: str | Path, model_dirs: Sequence[str | Path],
                   device: str | torch.device | None = None, mirroring: bool = True, save_probabilities: bool = False,
                   postprocess: str | None = None, overlays: bool = False, overwrite: bool = False,
                   harmonize: str | None = None, checkpoint: str = "final", step: float = 0.5,
                   batch_size: int | None = None, window: str = "roi", num_parts: int = 1, part_id: int = 0,
                   num_readers: int = 1, num_writers: int = 1, series: Sequence[str] | None = None,
                   dicom_seg: bool = False, allow_unusual_spacing: bool = False, adapt: str = "none",
                   adapt_steps: int = DEFAULT_STEPS, adapt_lr: float = DEFAULT_LR) -> list[Path]:
    """Segment every image of ``input_dir`` and write ``output_dir/<case><ending>`` on the input's exact grid.

    Args:
        input_dir: images (.nii.gz, .nii, .mha, .nrrd), ``<case>_0000.<ending>`` (channels _0000, _0001, ...)
            or ``<case>.<ending>`` for one channel.
        output_dir: destination; must not be ``input_dir`` or inside it.
        model_dirs: one model folder, or several (folds, seeds) to ensemble by averaging probabilities;
            an ensemble folder (``fold_<k>`` members) or the name of a shipped or installed model
            (``"lge-lv"``, ``lgeseg.model.registry``) stands for all its members.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ... (None: CUDA when available; an unknown name is a
            ``ValueError`` naming it, ``inference_device``).
        mirroring: in-plane flip test-time augmentation (4 passes per tile).
        save_probabilities: also write ``<case>.npz`` (``probabilities`` float32 (K, Z, Y, X)) and
            ``<case>.pkl``, plus ``dataset.json``/``plans.json``: what ``nnUNetv2_ensemble`` reads
            (see ``nnunet_files``).
        postprocess: ``"lcc"``, ``"lcc_per_label"`` or ``"none"``; None applies the first model's choice
            from ``model.json``.
        overlays: also write ``<case>_overlay.png`` (contours over every slice).
        overwrite: redo cases whose outputs exist. Otherwise they are skipped, but only when
            ``output_dir/lgeseg_predictions.json`` says the same models and settings made them; a folder
            made by other models or settings is refused (``OutputConflictError``).
        harmonize: ``"histogram"`` or ``"cyclegan:GAN_DIR"`` (see ``lgeseg.harmonization``), or None.
        checkpoint: ``"final"``, ``"best"`` or ``"latest"``. Without ``checkpoint_final.pt`` a folder holding
            ``checkpoint_latest.pt`` (training not finished) is refused, any other uses ``checkpoint_best.pt``
            with a warning (``model.folder.checkpoint_for_inference``).
        step: sliding-window stride as a fraction of the patch, in (0, 1].
        batch_size: tiles per forward pass (None: a device default).
        window: ``"roi"`` (default), ``"sliding"`` (nnU-Net) or ``"slice"`` (whole slices); see ``predict_volume``.
        num_parts, part_id: predict only the cases ``part_id::num_parts`` of the sorted case list (as
            nnU-Net), so ``num_parts`` runs on different GPUs or machines share one cohort.
        num_readers: threads reading the next cases while one is predicted (nnU-Net's ``-npp``).
        num_writers: threads postprocessing and writing finished cases (nnU-Net's ``-nps``).
        series: for a folder of DICOM series, the ones to predict (UID, series number, case name or
            description pattern, see ``lgeseg.files.dicom.select_series``); None predicts every series.
        dicom_seg: for DICOM input, also write ``<case>.seg.dcm``, a DICOM Segmentation referencing the
            source slices (needs highdicom, ``lgeseg[dicom]``; see ``lgeseg.files.dicom_seg``).
        allow_unusual_spacing: accept spacing outside ``io.IN_PLANE_SPACING_MM``/``THROUGH_PLANE_SPACING_MM``
            (zero or negative spacing is refused always).
        adapt: ``"none"`` (default) or ``"entropy"``: before predicting each case, adapt the network's
            normalization affine parameters to it by entropy minimization (TENT), then restore them
            (``lgeseg.inference.adaptation``).
        adapt_steps, adapt_lr: Adam steps per case and learning rate of ``adapt="entropy"``.

    Every predicted case is also checked (``quality.assess_segmentation``: mirror disagreement, myocardium
    missing on a slice, thin wall, a blood pool the myocardium does not enclose, implausible volumes, empty
    prediction, constant input) and the records are written to ``output_dir/qc.csv`` and ``qc.json`` (records
    of skipped cases already there are kept; a skipped case without one, left by a killed run, is assessed
    from its label map).
    A constant input image (all zero, blank) is not given to the network: its prediction is empty
    (all background), with a warning and the ``input_constant`` flag in ``qc.csv``.

    The output folder is locked while the run writes (``.lgeseg_predict.lock``; a second run is refused
    with ``FolderLockedError`` naming the first one's pid), temporary files left by a killed run are
    removed, and a read-only folder is reported before any inference (see ``output_folder``).

    Returns:
        The label maps written, in case order (skipped cases are not included). Raises
        ``FileNotFoundError``/``ValueError`` naming the file or folder for a bad model folder,
        unreadable input or channel mismatch; all inputs are checked before the first prediction.

    Usage (needs a trained model folder; ``lgeseg_predict -i ... -o ... -m ...`` is the same call)::

        from lgeseg.inference import predict_folder
        from lgeseg.inference.quality import read_quality_report

        written = predict_folder("imagesTs", "predictions", ["models/center1"], device="cuda")
        quality = read_quality_report("predictions")  # per-case flags (lgeseg.inference.quality)
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, found {window!r}")
    if num_readers < 1 or num_writers < 1:
        raise ValueError(f"worker counts must be at least 1, found {num_readers} readers, {num_writers} writers")
    check_step(step)
    adaptation = AdaptationSettings(adapt, adapt_steps, adapt_lr)
    check_folders(input_dir, output_dir)
    if postprocess is not None:
        apply_postprocessing(np.zeros((1, 1, 1), np.uint8), postprocess)  # names the valid choices if unknown
    models = load_models(fold_model_folders(list(model_dirs), None), inference_device(device), checkpoint)
    variant = postprocess or models[0].info.postprocessing
    labels = models[0].plan.labels
    if save_probabilities:
        check_consecutive_labels(labels)
    cases = select_part(list_input_cases(input_dir, list(series or ())), num_parts, part_id)
    if dicom_seg:
        _check_dicom_seg(cases, labels, input_dir)
    for case in cases:
        check_case(case, models[0].info.channel_names, allow_unusual_spacing)
    provenance = {"checkpoint": checkpoint, "mirroring": mirroring, "window": window, "step": step,
                  "postprocess": variant, "harmonize": harmonize, "adaptation": adaptation.to_record()}
    output_dir.mkdir(parents=True, exist_ok=True)
    check_writable(output_dir)  # a read-only folder fails here, before any inference
    export = _Export(output_dir, _label_lookup(models), variant, labels, save_probabilities, overlays, dicom_seg,
                     models[0].model_dir.resolve().name)
    settings = {"mirroring": mirroring, "step": step, "batch_size": batch_size, "window": window,
                "adaptation": adaptation}
    with lock_output_folder(output_dir):
        remove_stale_temporaries(output_dir)
        todo = _cases_to_do(cases, models, export, provenance, overwrite)
        if any(case.series for case in cases):
            _record_series(output_dir, cases)
        if save_probabilities and cases:
            write_ensemble_metadata(output_dir, labels, models[0].info.channel_names, output_ending(cases[0]))
        return _run_cases(todo, models, export, settings, harmonize, num_readers, num_writers)


def _cases_to_do(cases: Sequence[InputCase], models: Sequence[LoadedModel], export: _Export, provenance: dict,
                 overwrite: bool) -> list[InputCase]:
    """Check the folder's provenance and skip finished cases (called holding the folder's lock)."""
    outputs = {c.case_id: _outputs_of(c, export.output_dir, export.save_probabilities, export.overlays,
                                      export.dicom_seg) for c in cases}
    identities = [model_identity(m.model_dir, m.checkpoint or find_checkpoint(m.model_dir, provenance["checkpoint"]))
                  for m in models]
    check_provenance(export.output_dir, provenance_record(identities, provenance), overwrite,
                     outputs_exist=any(p.exists() for paths in outputs.values() for p in paths))
    todo = [c for c in cases if overwrite or not all(p.exists() for p in outputs[c.case_id])]
    if len(todo) < len(cases):
        logger.info("%d case(s) already predicted in %s by the same model and settings, skipped (use --overwrite)",
                    len(cases) - len(todo), export.output_dir)
        _assess_finished([c for c in cases if c not in todo], export.output_dir)
    return todo


def _assess_finished(finished: Sequence[InputCase], output_dir: Path) -> None:
    """Quality records for finished cases that ``qc.json`` lacks (the run that wrote them was killed).

    A run killed between a case's label map and its qc.json update leaves the case done but unassessed;
    the rerun skips it, so its record is computed here from the label map on disk. The mirror
    disagreement of the lost run is unknown (NaN); whether the input is constant is read again.
    """
    known = {record.case_id for record in read_quality_report(output_dir)}
    records = []
    for case in finished:
        if case.case_id in known:
            continue
        target = output_dir / f"{case.case_id}{output_ending(case)}"
        labels, geometry = io.read_label(target)
        constant = is_constant_image(read_case(case)[0])
        records.append(assess_segmentation(labels, geometry.spacing, case.case_id, input_constant=constant))
    if records:
        logger.info("%s: quality records of %d finished case(s) were missing (an interrupted run); assessed them "
                    "from their label maps (mirror_disagreement unknown)", output_dir / "qc.csv", len(records))
        write_quality_report(records, output_dir)
