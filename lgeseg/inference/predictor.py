"""Segment images with one or several trained models: the ``Predictor`` (``lgeseg_predict``, ``lgeseg.segment``).

A ``Predictor`` holds what prediction needs, loaded once: the models (``ensemble.load_models``), the
harmonizer of ``PredictionSettings.harmonize`` and the settings. ``predict_case`` segments one image
in memory; ``predict_folder`` segments a folder. For each case: read the channels, optionally harmonize,
predict (``ensemble.predict_volume``: the model's plan, slice by slice, the probabilities of all models
averaged and put back on the raw grid), take the argmax, postprocess, check the result
(``quality.assess_segmentation``) and write ``<case><ending>`` with exactly the input's shape, spacing,
origin and direction. Every input header is checked before anything is predicted, and every file is
written atomically, so an error never leaves half a file behind.

``predict_folder(input_dir, output_dir, model_dirs, ...)``, the function, is the form before the
``Predictor``; it is kept for one release and calls the ``Predictor``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lgeseg.core.atomic import remove_stale_temporaries
from lgeseg.core.records import CaseGeometry, load_json, save_json
from lgeseg.evaluation.postprocessing import apply_postprocessing
from lgeseg.files import io
from lgeseg.files.dicom_seg import require_dicom_seg, write_dicom_seg
from lgeseg.inference.adaptation import DEFAULT_LR, DEFAULT_STEPS, AdaptationSettings
from lgeseg.inference.ensemble import (
    fold_model_folders,
    inference_device,
    label_values,
    load_models,
    predict_volume,
)
from lgeseg.inference.input_cases import (
    InputCase,
    check_case,
    check_folders,
    list_input_cases,
    read_case,
    select_part,
)
from lgeseg.inference.nnunet_files import check_consecutive_labels, write_ensemble_metadata, write_probability_files
from lgeseg.inference.output_folder import (
    SERIES_FILE,
    CaseOutputs,
    case_outputs,
    check_provenance,
    check_writable,
    lock_output_folder,
    model_identity,
    output_ending,
    provenance_record,
)
from lgeseg.inference.overlays import write_overlay
from lgeseg.inference.prediction_settings import WINDOWS, PredictionSettings
from lgeseg.inference.quality import (
    QUALITY_CSV_FILE,
    CaseQuality,
    MirrorAgreement,
    assess_segmentation,
    is_constant_image,
    read_quality_report,
    write_quality_report,
)
from lgeseg.model.folder import LoadedModel, find_checkpoint

__all__ = ["WINDOWS", "CasePrediction", "FolderPrediction", "PredictionSettings", "Predictor", "naming_case",
           "predict_folder"]

logger = logging.getLogger(__name__)

#: (images (C, z, y, x), geometry) -> harmonized images (C, z, y, x) (``harmonization.make_harmonizer``).
Harmonizer = Callable[[np.ndarray, CaseGeometry], np.ndarray]


@dataclasses.dataclass(frozen=True)
class CasePrediction:
    """One image's prediction (``Predictor.predict_case``).

    Attributes:
        labels: uint8 (z, y, x) label map on the image's grid, postprocessed.
        probabilities: float32 (K, z, y, x) class probabilities on the image's grid; class k is label value
            ``Predictor.label_values[k]``.
        quality: the quality record of the label map (``quality.assess_segmentation``).
    """

    labels: np.ndarray
    probabilities: np.ndarray
    quality: CaseQuality


@dataclasses.dataclass(frozen=True)
class FolderPrediction:
    """What ``Predictor.predict_folder`` did.

    Attributes:
        written: the label maps written, in case order (cases skipped as already predicted are not included).
        quality: the quality records of the run's cases, predicted now or skipped as predicted before, in
            case order: what ``qc.json`` holds for them (``quality.summary_text`` summarizes them).
    """

    written: tuple[Path, ...]
    quality: tuple[CaseQuality, ...]


class Predictor:
    """Trained model(s), their harmonizer and the ``PredictionSettings``, loaded once for any number of cases.

    Args:
        models: loaded models with one shared preprocessing (``ensemble.load_models``; several: an ensemble
            whose probabilities are averaged). ``Predictor.from_model`` loads them by name or folder.
        settings: how to predict and what to write (default: ``PredictionSettings()``). Its harmonization
            (the histogram reference, or the CycleGAN) is loaded here, once.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())  # an untrained model folder; a trained one: Predictor.from_model("lge-lv")
        >>> predictor = Predictor.from_model(write_untrained_model(tmp / "model"),
        ...                                  PredictionSettings(device="cpu", mirroring=False))
        >>> geometry = CaseGeometry((3, 40, 48), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> image = np.random.default_rng(0).random((1, 3, 40, 48), dtype=np.float32)  # (C, z, y, x)
        >>> case = predictor.predict_case(image, geometry, case_id="p1")
        >>> case.labels.shape, case.probabilities.shape, case.quality.case_id
        ((3, 40, 48), (3, 3, 40, 48), 'p1')
        >>> io.write_image(tmp / "images" / "p1_0000.nii.gz", image[0], geometry)
        >>> result = predictor.predict_folder(tmp / "images", tmp / "predictions")  # the same models, not reloaded
        >>> [p.name for p in result.written], [q.case_id for q in result.quality]
        (['p1.nii.gz'], ['p1'])
        >>> import shutil; shutil.rmtree(tmp)
    """

    def __init__(self, models: Sequence[LoadedModel], settings: PredictionSettings | None = None) -> None:
        if not models:
            raise ValueError("Predictor: no model given (Predictor.from_model loads models by name or folder)")
        self.models = tuple(models)
        self.settings = settings or PredictionSettings()
        #: The postprocessing applied: the settings', else the first model's choice (``model.json``).
        self.postprocess = self.settings.postprocess or self.models[0].info.postprocessing
        self.labels = dict(self.models[0].plan.labels)
        self.channel_names = dict(self.models[0].info.channel_names)
        #: Class index -> label value (``ensemble.label_values``).
        self.label_values = label_values(self.models)
        if self.settings.save_probabilities:
            check_consecutive_labels(self.labels)
        self._harmonizer = _load_harmonizer(self.settings.harmonize, self.models[0].model_dir)

    @classmethod
    def from_model(cls, model: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                   settings: PredictionSettings | None = None, folds: Sequence[str] | None = None) -> Predictor:
        """Load ``model`` once, on ``settings.device`` with ``settings.checkpoint``, into a ``Predictor``.

        Args:
            model: a shipped or installed model's name (``"lge-lv"``, ``lgeseg.model.registry``), a model
                folder, an ensemble folder (its ``fold_<k>`` members, all of them), an nnU-Net training
                folder, or a list of these to ensemble (``ensemble.fold_model_folders``).
            settings: as for ``Predictor``.
            folds: only ``MODEL/fold_<k>`` for these k (nnU-Net's ``-f``); None: every member.

        Raises ``FileNotFoundError``/``ValueError`` naming the folder for a missing or incomplete model,
        and ``ValueError`` for models that cannot be ensembled (``ensemble.load_models``). The class
        docstring shows it.
        """
        settings = settings or PredictionSettings()
        specs = [model] if isinstance(model, (str, os.PathLike)) else list(model)
        folders = fold_model_folders(specs, folds)
        return cls(load_models(folders, inference_device(settings.device), settings.checkpoint), settings)

    def predict_case(self, image: np.ndarray, geometry: CaseGeometry, case_id: str = "case") -> CasePrediction:
        """Segment one image in memory, as ``predict_folder`` segments each case, writing nothing.

        Args:
            image: (C, z, y, x) raw intensities on ``geometry``'s grid, one channel per model channel.
            geometry: the image's grid (shape (z, y, x), spacing mm (z, y, x), origin, direction).
            case_id: names the case in log messages and its quality record.

        Returns the label map, probabilities and quality record (``CasePrediction``). A constant image
        (blank) is not given to the network: its prediction is empty, flagged ``input_constant``.
        Raises ``ValueError`` when the image's shape does not fit the model's channels and ``geometry``.
        The class docstring shows it.
        """
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 4 or image.shape[0] != len(self.channel_names) or image.shape[1:] != tuple(geometry.shape):
            raise ValueError(f"case {case_id}: expected an image of shape (C, z, y, x) = ({len(self.channel_names)}, "
                             f"{', '.join(map(str, geometry.shape))}) (the model's channels "
                             f"{', '.join(self.channel_names.values())}; the geometry's shape); found {image.shape}")
        image, probabilities, disagreement, constant = self._probabilities(image, geometry, case_id)
        if constant:
            _warn_constant(f"case {case_id}", image, "predicted as empty (all background), flagged input_constant")
        labels = self._label_map(probabilities)
        quality = assess_segmentation(labels, geometry.spacing, case_id, disagreement, constant)
        return CasePrediction(labels, probabilities, quality)

    def predict_folder(self, input_dir: str | Path, output_dir: str | Path, overwrite: bool = False,
                       series: Sequence[str] | None = None, num_parts: int = 1, part_id: int = 0) -> FolderPrediction:
        """Segment every image of ``input_dir`` into ``output_dir/<case><ending>`` on the input's exact grid.

        Args:
            input_dir: images (.nii.gz, .nii, .mha, .nrrd), ``<case>_0000.<ending>`` (channels _0000, _0001, ...)
                or ``<case>.<ending>`` for one channel; or DICOM series (``input_cases.list_input_cases``).
            output_dir: destination; must not be ``input_dir`` or inside it.
            overwrite: redo cases whose outputs exist. Otherwise they are skipped, but only when
                ``output_dir/lgeseg_predictions.json`` says the same models and settings made them; a folder
                made by other models or settings is refused (``OutputConflictError``).
            series: for a folder of DICOM series, the ones to predict (UID, series number, case name or
                description pattern, ``lgeseg.files.dicom.select_series``); None: the study's short-axis LGE stacks.
            num_parts, part_id: predict only the cases ``part_id::num_parts`` of the sorted case list (as
                nnU-Net), so ``num_parts`` runs on different GPUs or machines share one cohort.

        Every predicted case is checked (``quality.assess_segmentation``: mirror disagreement, myocardium
        missing on a slice, thin wall, a blood pool the myocardium does not enclose, implausible volumes,
        empty prediction, constant input) and the records are written to ``output_dir/qc.csv`` and
        ``qc.json`` (records of skipped cases already there are kept; a skipped case without one, left by
        a killed run, is assessed from its label map). A constant input image (all zero, blank) is not
        given to the network: its prediction is empty, with a warning and the ``input_constant`` flag.
        The output folder is locked while the run writes (``.lgeseg_predict.lock``; a second run is refused
        with ``FolderLockedError`` naming the first one's pid), temporary files left by a killed run are
        removed, and a read-only folder is reported before any inference (``output_folder``).

        Returns the label maps written and the quality records of the run's cases (``FolderPrediction``).
        Raises ``FileNotFoundError``/``ValueError`` naming the file or folder for unreadable input or a
        channel mismatch; all inputs are checked before the first prediction. The class docstring shows it.
        """
        input_dir, output_dir = Path(input_dir), Path(output_dir)
        check_folders(input_dir, output_dir)
        cases = select_part(list_input_cases(input_dir, list(series or ())), num_parts, part_id)
        settings = self.settings
        if settings.dicom_seg:
            _check_dicom_seg(cases, self.labels, input_dir)
        for case in cases:
            check_case(case, self.channel_names, settings.allow_unusual_spacing)
        output_dir.mkdir(parents=True, exist_ok=True)
        check_writable(output_dir)  # a read-only folder fails here, before any inference
        outputs = {case.case_id: case_outputs(case, output_dir, settings.dicom_seg, settings.save_probabilities,
                                              settings.overlays) for case in cases}
        with lock_output_folder(output_dir):
            remove_stale_temporaries(output_dir)
            records = {record.case_id: record for record in read_quality_report(output_dir)}
            todo = self._cases_to_do(cases, outputs, output_dir, overwrite, records)
            if any(case.series for case in cases):
                _record_series(output_dir, cases)
            if settings.save_probabilities and cases:
                write_ensemble_metadata(output_dir, self.labels, self.channel_names, output_ending(cases[0]))
            written = self._run(todo, outputs, output_dir, records)
        return FolderPrediction(tuple(written), tuple(records[c.case_id] for c in cases if c.case_id in records))

    def _probabilities(self, image: np.ndarray, geometry: CaseGeometry,
                       case_id: str) -> tuple[np.ndarray, np.ndarray, float, bool]:
        """(the image as predicted (harmonized), probabilities (K, z, y, x), mirror disagreement, input constant)."""
        input_constant = is_constant_image(image)
        if self._harmonizer is not None:
            image = np.asarray(self._harmonizer(image, geometry), dtype=np.float32)
        if input_constant:  # a blank image has no ventricle: the network would label noise confidently
            probabilities = np.zeros((len(self.label_values), *image.shape[1:]), np.float32)
            probabilities[0] = 1.0
            return image, probabilities, 0.0, True  # an empty prediction is flip-invariant
        agreement = MirrorAgreement()
        settings = self.settings
        probabilities = predict_volume(image, geometry, self.models, mirroring=settings.mirroring, step=settings.step,
                                       batch_size=settings.batch_size, case_id=case_id, window=settings.window,
                                       agreement=agreement, adaptation=settings.adaptation)
        return image, probabilities, agreement.disagreement(), False

    def _label_map(self, probabilities: np.ndarray) -> np.ndarray:
        return apply_postprocessing(self.label_values[np.argmax(probabilities, axis=0)], self.postprocess)

    def _cases_to_do(self, cases: Sequence[InputCase], outputs: dict[str, CaseOutputs], output_dir: Path,
                     overwrite: bool, records: dict[str, CaseQuality]) -> list[InputCase]:
        """Check the folder's provenance and skip finished cases (called holding the folder's lock)."""
        checkpoint = self.settings.checkpoint
        identities = [model_identity(m.model_dir, m.checkpoint or find_checkpoint(m.model_dir, checkpoint))
                      for m in self.models]
        check_provenance(output_dir, provenance_record(identities, self.settings.provenance(self.postprocess)),
                         overwrite, outputs_exist=any(p.exists() for files in outputs.values() for p in files.paths))
        todo = [c for c in cases if overwrite or not all(p.exists() for p in outputs[c.case_id].paths)]
        if len(todo) < len(cases):
            logger.info("%d case(s) already predicted in %s by the same model and settings, skipped (use "
                        "--overwrite)", len(cases) - len(todo), output_dir)
            _assess_finished([c for c in cases if c not in todo], outputs, output_dir, records)
        return todo

    def _run(self, todo: Sequence[InputCase], outputs: dict[str, CaseOutputs], output_dir: Path,
             records: dict[str, CaseQuality]) -> list[Path]:
        """Read (``num_readers`` threads ahead), predict (this thread) and write (``num_writers`` threads) ``todo``.

        The quality report is written by this thread after each case's files (in case order), so it always
        matches what is on disk.
        """
        written: list[Path] = []
        pending: deque[Future] = deque()
        readers, writers = self.settings.num_readers, self.settings.num_writers

        def finish(future: Future) -> None:
            target, quality = future.result()
            write_quality_report([quality], output_dir)
            records[quality.case_id] = quality
            written.append(target)

        with ThreadPoolExecutor(readers, "lgeseg-read") as reading, ThreadPoolExecutor(writers, "lgeseg-export") as out:
            loaded = _prefetch(reading, _read, todo, readers)
            for case, (image, geometry) in tqdm(zip(todo, loaded, strict=True), total=len(todo), desc="predict",
                                                unit="case"):
                with naming_case(case):
                    image, probabilities, disagreement, constant = self._probabilities(image, geometry, case.case_id)
                if constant:
                    _warn_constant(str(case.paths[0]), image, "written as an empty prediction and flagged "
                                   "input_constant in qc.csv")
                pending.append(out.submit(self._write_case, case, outputs[case.case_id], image, geometry,
                                          probabilities, disagreement, constant))
                while len(pending) > writers:  # bound the probabilities held in memory
                    finish(pending.popleft())
            while pending:
                finish(pending.popleft())
        return written

    def _write_case(self, case: InputCase, outputs: CaseOutputs, image: np.ndarray, geometry: CaseGeometry,
                    probabilities: np.ndarray, disagreement: float, input_constant: bool) -> tuple[Path, CaseQuality]:
        """Write one case's files (run by the writer threads); returns its label map and quality record."""
        with naming_case(case):
            segmentation = self._label_map(probabilities)
            io.write_label(outputs.label_map, segmentation, geometry)
            if outputs.probabilities is not None:
                write_probability_files(outputs.probabilities, probabilities, geometry, self.labels)
            if outputs.dicom_seg is not None and case.series is not None:
                write_dicom_seg(outputs.dicom_seg, segmentation, case.series, self.labels,
                                self.models[0].model_dir.resolve().name)
            if outputs.overlay is not None:
                write_overlay(outputs.overlay, image[0], segmentation, geometry.spacing, title=case.case_id)
            quality = assess_segmentation(segmentation, geometry.spacing, case.case_id, disagreement, input_constant)
        return outputs.label_map, quality


def _load_harmonizer(spec: str | None, model_dir: Path) -> Harmonizer | None:
    """The harmonizer of ``spec``, loaded once (None: no harmonization, nothing loaded)."""
    if spec is None or spec == "none":
        return None
    from lgeseg.harmonization import make_harmonizer  # deferred: it loads SciPy, predict starts without it

    return make_harmonizer(spec, model_dir)


def _warn_constant(where: str, image: np.ndarray, outcome: str) -> None:
    logger.warning("%s: the image is constant (every voxel %g): %s", where,
                   float(np.nanmax(image)) if image.size else 0.0, outcome)


def _check_dicom_seg(cases: Sequence[InputCase], labels: dict[str, int], input_dir: Path) -> None:
    require_dicom_seg()
    if not all(case.series for case in cases):
        raise ValueError(f"{input_dir}: --dicom-seg needs DICOM input (a folder of DICOM series)")
    if sorted(labels.values()) != list(range(len(labels))):
        raise ValueError(f"--dicom-seg: the model's labels {labels} must be 0, 1, ..., K-1 (segment numbers)")


def _record_series(output_dir: Path, cases: Sequence[InputCase]) -> None:
    """Write ``SERIES_FILE``: which DICOM series each case came from (merged with earlier runs' parts)."""
    path = output_dir / SERIES_FILE
    known = load_json(path) if path.is_file() else {}
    for case in cases:
        if case.series is not None:
            s = case.series
            known[case.case_id] = {"series_instance_uid": s.uid, "series_number": s.number,
                                   "series_description": s.description, "modality": s.modality,
                                   "folder": str(s.files[0].parent), "num_files": len(s.files)}
    save_json(dict(sorted(known.items())), path)


def _assess_finished(finished: Sequence[InputCase], outputs: dict[str, CaseOutputs], output_dir: Path,
                     records: dict[str, CaseQuality]) -> None:
    """Quality records for finished cases that ``qc.json`` (``records``) lacks: their run was killed.

    A run killed between a case's label map and its qc.json update leaves the case done but unassessed;
    the rerun skips it, so its record is computed here from the label map on disk. The mirror
    disagreement of the lost run is unknown (NaN); whether the input is constant is read again.
    """
    assessed = []
    for case in finished:
        if case.case_id in records:
            continue
        labels, geometry = io.read_label(outputs[case.case_id].label_map)
        constant = is_constant_image(read_case(case, checked=True)[0])  # predict_folder ran check_case
        assessed.append(assess_segmentation(labels, geometry.spacing, case.case_id, input_constant=constant))
    if assessed:
        logger.info("%s: quality records of %d finished case(s) were missing (an interrupted run); assessed them "
                    "from their label maps (mirror_disagreement unknown)", output_dir / QUALITY_CSV_FILE, len(assessed))
        write_quality_report(assessed, output_dir)
        records.update((record.case_id, record) for record in assessed)


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
        return read_case(case, checked=True)  # predict_folder ran check_case on every case


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


def predict_folder(input_dir: str | Path, output_dir: str | Path, model_dirs: Sequence[str | Path],
                   device: str | torch.device | None = None, mirroring: bool = True, save_probabilities: bool = False,
                   postprocess: str | None = None, overlays: bool = False, overwrite: bool = False,
                   harmonize: str | None = None, checkpoint: str = "final", step: float = 0.5,
                   batch_size: int | None = None, window: str = "roi", num_parts: int = 1, part_id: int = 0,
                   num_readers: int = 1, num_writers: int = 1, series: Sequence[str] | None = None,
                   dicom_seg: bool = False, allow_unusual_spacing: bool = False, adapt: str = "none",
                   adapt_steps: int = DEFAULT_STEPS, adapt_lr: float = DEFAULT_LR) -> list[Path]:
    """The form before the ``Predictor``, kept for one release: one call loads the models and predicts a folder.

    It builds ``PredictionSettings`` from the keyword arguments (their meaning is the settings', and
    ``adapt``, ``adapt_steps``, ``adapt_lr`` are ``AdaptationSettings``' method, steps and lr), loads the
    models with ``Predictor.from_model(model_dirs, settings)`` and returns
    ``Predictor.predict_folder(input_dir, output_dir, overwrite, series, num_parts, part_id).written``:
    the label maps written, in case order. Use the ``Predictor`` instead: it loads the models and the
    harmonizer once for many folders and returns the quality records too.

    Usage (``Predictor.from_model(["models/center1"], PredictionSettings(device="cuda")).predict_folder(
    "imagesTs", "predictions")`` is the same)::

        from lgeseg.inference import predict_folder

        written = predict_folder("imagesTs", "predictions", ["models/center1"], device="cuda")
    """
    settings = PredictionSettings(
        checkpoint=checkpoint, device=None if device is None else str(device), window=window, step=step,
        mirroring=mirroring, batch_size=batch_size, postprocess=postprocess, harmonize=harmonize,
        adaptation=AdaptationSettings(adapt, adapt_steps, adapt_lr), save_probabilities=save_probabilities,
        overlays=overlays, dicom_seg=dicom_seg, allow_unusual_spacing=allow_unusual_spacing, num_readers=num_readers,
        num_writers=num_writers)
    predictor = Predictor.from_model(list(model_dirs), settings)
    result = predictor.predict_folder(input_dir, output_dir, overwrite=overwrite, series=series, num_parts=num_parts,
                                      part_id=part_id)
    return list(result.written)
