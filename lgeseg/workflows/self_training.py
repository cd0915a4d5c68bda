"""Adapting a model to a new hospital from its unlabeled scans: self-training on quality-checked pseudo-labels.

``adapt_to_center(model, images, out)`` (what ``lgeseg_adapt`` runs):

1. the model (every member of an ensemble, with mirroring) segments the new center's images into
   ``out/pseudo_labels`` and checks each case (``inference.quality``: mirror disagreement, missing
   myocardium, thin wall, implausible volume, empty prediction);
2. cases the check flags are dropped: a wrong pseudo-label would teach the model its own mistake;
   with ``uncertain_voxels="mask"`` (``--mask-uncertain``) a case flagged only ``mirror_unstable`` is
   kept, and in every kept case the voxels where the teacher is unsure get the ignore label
   (``workflows.uncertain_voxels``: averaged top class probability below ``confidence``, near the
   predicted heart), which the student's loss skips;
3. the kept images with their pseudo-labels become a raw dataset (``out/raw``), preprocessed with
   the model's plans (``out/pre``);
4. each member is fine-tuned (all blocks, the parent's recipe and augmentation, a weight average as
   the model) on the pseudo-labelled cases, mixed half and half with the labelled ``source`` data
   when it is given, so that it learns the new center's appearance without forgetting the anatomy;
5. ``out/fold_<k>`` are the adapted members: ``lgeseg_predict -m out`` uses them all, and
   ``out/adaptation.json`` records the teacher, the kept and dropped cases and the settings.

The new center's images are only read; nothing is written next to them.

Usage (a trained model and a folder of the new center's images)::

    from lgeseg.workflows.self_training import adapt_to_center
    adapt_to_center("lge-lv-cine", "new_center/images", "models/adapted", source=["pre/cine"])
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lgeseg import __version__
from lgeseg.core.errors import OutputConflictError
from lgeseg.core.records import PLANS_FILE, load_json, save_json
from lgeseg.datasets.layout import IGNORE_LABEL
from lgeseg.files import io
from lgeseg.inference.input_cases import list_input_cases, read_case
from lgeseg.inference.nnunet_files import probability_files
from lgeseg.inference.output_folder import case_outputs
from lgeseg.inference.prediction_settings import PredictionSettings
from lgeseg.inference.predictor import Predictor
from lgeseg.inference.quality import CaseQuality
from lgeseg.model.folder import CHECKPOINT_FINAL_FILE, CHECKPOINT_LATEST_FILE, read_model_metadata
from lgeseg.model.registry import resolve_model
from lgeseg.training.finetune import finetune
from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess
from lgeseg.workflows.uncertain_voxels import DEFAULT_BAND_MM, DEFAULT_CONFIDENCE, RULE, mask_uncertain

log = logging.getLogger(__name__)

#: The record that makes a folder an adaptation output (and lets a rerun continue it).
RECORD = "adaptation.json"
#: Name of the new center's dataset inside ``out/raw`` and ``out/pre``.
TARGET_DATASET = "target"
#: Default fine-tuning budget per member: epochs x iterations (half the README training budget).
DEFAULT_EPOCHS = 5
DEFAULT_ITERATIONS = 100
#: Default rounds of self-training (``adapt_to_center(rounds=...)``, ``lgeseg_adapt --rounds``): the second
#: round, taught by the first round's students, added 0.011-0.023 myocardium Dice on real LGE (docs/adaptation.md).
DEFAULT_ROUNDS = 2
#: What to do with the voxels where the teacher is unsure: ``"keep"`` its label there (and drop every
#: flagged case), or ``"mask"`` them with the ignore label (and keep cases flagged only for them).
UNCERTAIN_VOXEL_MODES = ("keep", "mask")
#: The quality flags that masking answers: a case flagged for these alone is kept with ``"mask"``.
MASKED_FLAGS = ("mirror_unstable",)


@dataclasses.dataclass(frozen=True)
class PseudoLabelChoice:
    """Which pseudo-labelled cases train the student.

    Attributes:
        kept: case ids whose prediction passed every quality check.
        dropped: case id -> the failed checks (``CaseQuality.reasons``).
    """

    kept: tuple[str, ...]
    dropped: dict[str, tuple[str, ...]]


def choose_pseudo_labels(records: Sequence[CaseQuality], min_cases: int = 1,
                         tolerated: Sequence[str] = ()) -> PseudoLabelChoice:
    """Keep the cases no quality check flagged; raise ``ValueError`` when fewer than ``min_cases`` remain.

    ``tolerated``: flags (``CaseQuality.reasons``) that alone do not drop a case (``MASKED_FLAGS`` when
    the unsure voxels are masked); a case with any other flag is still dropped.

    Example:
        >>> import numpy as np
        >>> from lgeseg.inference.quality import assess_segmentation
        >>> ring = np.zeros((2, 64, 64), np.uint8)
        >>> ring[:, 12:52, 12:52] = 2
        >>> ring[:, 20:44, 20:44] = 1
        >>> records = [assess_segmentation(ring, (8.0, 1.5, 1.5), "good", blood_label=1, myocardium_label=2),
        ...            assess_segmentation(np.zeros((2, 64, 64), np.uint8), (8.0, 1.5, 1.5), "empty")]
        >>> choice = choose_pseudo_labels(records)
        >>> choice.kept, choice.dropped
        (('good',), {'empty': ('no_foreground',)})
        >>> choose_pseudo_labels(records, tolerated=("no_foreground",)).kept
        ('good', 'empty')
    """
    def dropped_case(record: CaseQuality) -> bool:
        return record.flagged and not set(record.reasons) <= set(tolerated)

    kept = tuple(r.case_id for r in records if not dropped_case(r))
    dropped = {r.case_id: tuple(r.reasons) for r in records if dropped_case(r)}
    if len(kept) < min_cases:
        raise ValueError(f"only {len(kept)} of {len(records)} pseudo-labelled case(s) passed the quality checks "
                         f"(at least {min_cases} needed); the model is too far from this center to teach itself: "
                         "annotate a few cases and use lgeseg_finetune")
    return PseudoLabelChoice(kept, dropped)


def write_pseudo_dataset(images_dir: Path, labels_dir: Path, case_ids: Sequence[str], out_dir: Path,
                         labels: dict[str, int], channel_names: dict[str, str]) -> Path:
    """A raw dataset (nnU-Net layout) of ``case_ids``: their images (as NIfTI) and pseudo-label maps.

    Args:
        images_dir: the new center's image folder (files or DICOM series, as ``lgeseg_predict`` reads it).
        labels_dir: the pseudo-labels, ``<case>.<ending>`` as ``lgeseg_predict`` wrote them.
        case_ids: the cases to include.
        out_dir: the dataset folder to write (``imagesTr``, ``labelsTr``, ``dataset.json``).
        labels, channel_names: the model's, written into ``dataset.json``.

    Returns ``out_dir``.

    Usage (after ``lgeseg_predict -i new_center -o pseudo -m MODEL``)::

        write_pseudo_dataset(Path("new_center"), Path("pseudo"), ["p1", "p2"], Path("raw/target"),
                             {"background": 0, "blood_pool": 1, "myocardium": 2}, {"0": "LGE"})
    """
    cases = {case.case_id: case for case in list_input_cases(images_dir)}
    for sub in ("imagesTr", "labelsTr"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    for case_id in case_ids:
        image, geometry = read_case(cases[case_id])
        for channel, array in enumerate(image):
            io.write_image(out_dir / "imagesTr" / f"{case_id}_{channel:04d}.nii.gz", array, geometry)
        label, _ = io.read_label(case_outputs(cases[case_id], labels_dir).label_map)
        io.write_label(out_dir / "labelsTr" / f"{case_id}.nii.gz", label, geometry)
    save_json({"name": TARGET_DATASET, "description": f"pseudo-labels of {images_dir} (lgeseg_adapt)",
               "channel_names": channel_names, "labels": labels, "numTraining": len(case_ids),
               "file_ending": ".nii.gz"}, out_dir / "dataset.json")
    return out_dir


def mask_pseudo_dataset(dataset_dir: Path, pseudo_dir: Path, confidence: float = DEFAULT_CONFIDENCE,
                        band_mm: float = DEFAULT_BAND_MM) -> dict[str, Any]:
    """Give the unsure voxels of every pseudo-label in ``dataset_dir/labelsTr`` the ignore label, in place.

    The ignore value is one above the classes of ``dataset_dir/dataset.json``, which gets ``"ignore"``
    in its ``labels``; the teacher's probabilities are ``pseudo_dir/<case>.npz`` (``probabilities``
    (K, z, y, x) on the case's grid, as ``lgeseg_predict --save-probabilities`` writes them). The rule is
    ``uncertain_voxels.mask_uncertain``'s; ``pseudo_dir``'s label maps are left as they are.

    Args:
        dataset_dir: a dataset ``write_pseudo_dataset`` wrote.
        pseudo_dir: the teacher's prediction folder, with probabilities.
        confidence, band_mm: the rule's threshold (averaged top class probability) and band (mm, in-plane).

    Returns:
        What ``adaptation.json`` records: ``rule``, ``confidence``, ``band_mm``, ``ignore_label``,
        ``masked_voxels`` and ``masked_fraction`` per case (ignored / (predicted foreground or ignored)).

    Usage (after ``write_pseudo_dataset`` from a prediction made with ``save_probabilities``)::

        mask_pseudo_dataset(Path("raw/target"), Path("pseudo"), confidence=0.8)
    """
    meta = load_json(dataset_dir / "dataset.json")
    classes = {k: int(v) for k, v in meta["labels"].items() if k != IGNORE_LABEL}
    ignore = max(classes.values()) + 1
    voxels: dict[str, int] = {}
    fractions: dict[str, float] = {}
    for path in sorted((dataset_dir / "labelsTr").glob("*.nii.gz")):
        case_id = path.name[: -len(".nii.gz")]
        label, geometry = io.read_label(path)
        npz = probability_files(pseudo_dir, case_id)[0]
        if not npz.is_file():
            raise FileNotFoundError(f"{npz}: the teacher's probabilities of case {case_id} are missing; predict "
                                    "with save_probabilities (lgeseg_adapt does) or run without --mask-uncertain")
        with np.load(npz) as data:
            probabilities = data["probabilities"]
        label = np.where(label == ignore, 0, label).astype(np.uint8)  # a rerun: start from the teacher's labels
        masked = mask_uncertain(label, probabilities, geometry.spacing, ignore, confidence, band_mm)
        io.write_label(path, masked.labels, geometry)
        voxels[case_id], fractions[case_id] = masked.masked_voxels, round(masked.masked_fraction, 4)
    save_json({**meta, "labels": {**classes, IGNORE_LABEL: ignore}}, dataset_dir / "dataset.json")
    log.info("unsure voxels masked (ignore label %d): %s", ignore,
             ", ".join(f"{c} {100 * f:.1f}%" for c, f in fractions.items()) or "no case")
    return {"rule": RULE, "confidence": confidence, "band_mm": band_mm, "ignore_label": ignore,
            "masked_voxels": voxels, "masked_fraction": fractions}


def check_output(out_dir: Path, images_dir: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds anything but an earlier adaptation, or one inside the images.

    Example:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> (tmp / "mine").mkdir(); _ = (tmp / "mine" / "notes.txt").write_text("keep")
        >>> check_output(tmp / "new", tmp / "images", overwrite=False)  # a new folder is fine
        >>> check_output(tmp / "mine", tmp / "images", overwrite=False)
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: .../mine: exists and is not an lgeseg_adapt output (no
        adaptation.json); ...
        >>> import shutil; shutil.rmtree(tmp)
    """
    out, images = out_dir.resolve(), images_dir.resolve()
    if out == images or images in out.parents:
        raise OutputConflictError(f"{out_dir}: the output folder must not be the image folder or inside it "
                                  f"({images_dir}); choose another -o")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / RECORD).is_file():
        raise OutputConflictError(f"{out_dir}: exists and is not an lgeseg_adapt output (no {RECORD}); "
                                  "choose a new -o (nothing was changed)")
    if is_finished(out_dir) and not overwrite:
        raise OutputConflictError(f"{out_dir}: holds a finished adaptation; use --overwrite to redo it")


def is_finished(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a finished adaptation (its ``adaptation.json`` says so).

    Example:
        >>> is_finished(Path("no/such/folder"))
        False
    """
    return (out_dir / RECORD).is_file() and bool(load_json(out_dir / RECORD).get("finished"))


def adapt_to_center(model: str | Path, images_dir: str | Path, out_dir: str | Path,
                    source: Sequence[str | Path] = (), epochs: int = DEFAULT_EPOCHS,
                    iterations_per_epoch: int = DEFAULT_ITERATIONS, lr: float | None = None,
                    trainable: str = "all", device: str | None = None, seed: int = 0,
                    keep_flagged: bool = False, overwrite: bool = False, uncertain_voxels: str = "mask",
                    confidence: float = DEFAULT_CONFIDENCE, rounds: int = DEFAULT_ROUNDS) -> Path:
    """Self-train ``model`` on the unlabeled images of a new center; returns the adapted ensemble folder.

    Args:
        model: model folder, ensemble folder or name (``lge-lv``); every member is adapted.
        images_dir: the new center's images (as ``lgeseg_predict -i`` takes them); never written to.
        out_dir: folder to create: pseudo-labels, their dataset, and the adapted members ``fold_<k>``.
        source: preprocessed folders of labelled data made with the model's plans (e.g. its training
            data), mixed into every batch; none: pseudo-labels only.
        epochs, iterations_per_epoch: fine-tuning budget per member.
        lr: learning rate (default: the model's recipe's).
        trainable: ``"all"``, ``"encoder:K"`` or ``"decoder:K"``.
        device: ``"cpu"``, ``"cuda"``, ... (None: the best available).
        seed: seeds fine-tuning.
        keep_flagged: train on every pseudo-label, flagged ones too (not recommended: for a center where
            the checks flag nearly everything, e.g. unusual anatomy).
        overwrite: redo a finished adaptation in ``out_dir``.
        uncertain_voxels: ``"mask"`` (default): the voxels where the teacher is unsure (its averaged top
            class probability below ``confidence``, within ``uncertain_voxels.DEFAULT_BAND_MM`` in-plane of
            its predicted foreground) get the ignore label, which the student's loss skips, and a case
            flagged only ``mirror_unstable`` is kept (``MASKED_FLAGS``); the teacher then also writes its
            probabilities (``pseudo_labels/<case>.npz``). ``"keep"``: the pseudo-labels are the teacher's
            label maps and every flagged case is dropped.
        confidence: the threshold of ``"mask"``, in (0, 1] (default 0.8; ``workflows.uncertain_voxels``).
        rounds: rounds of self-training (>= 1; default 2). Round r > 1 takes round r - 1's adapted members as its
            teacher and as the members it fine-tunes; rounds before the last are kept in
            ``out_dir/rounds/round_<r>`` (each a complete adaptation folder), the last is ``out_dir``.

    Raises ``OutputConflictError`` for an output folder that is not an adaptation's, ``ValueError``
    when no pseudo-label passes the quality checks, and the errors of prediction and fine-tuning.

    Usage (``lgeseg_adapt -m lge-lv-cine -i new_center -o models/adapted -s pre/cine`` is the same call)::

        adapted = adapt_to_center("lge-lv-cine", "new_center", "models/adapted", source=["pre/cine"])
        Predictor.from_model(adapted).predict_folder("new_center", "predictions")
    """
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    if uncertain_voxels not in UNCERTAIN_VOXEL_MODES:
        raise ValueError(f"uncertain_voxels: expected one of {', '.join(UNCERTAIN_VOXEL_MODES)}, found "
                         f"{uncertain_voxels!r}")
    if not 0.0 < confidence <= 1.0:
        raise ValueError(f"confidence: expected a probability in (0, 1], found {confidence}")
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds: expected a whole number >= 1, found {rounds!r}")
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: image folder not found")
    check_output(out_dir, images_dir, overwrite)
    settings = {"source": source, "epochs": epochs, "iterations_per_epoch": iterations_per_epoch, "lr": lr,
                "trainable": trainable, "device": device, "seed": seed, "keep_flagged": keep_flagged,
                "overwrite": overwrite, "uncertain_voxels": uncertain_voxels, "confidence": confidence}
    teacher: str | Path = model
    if rounds > 1:  # the record first: out_dir is an adaptation's before its rounds/ folder appears
        out_dir.mkdir(parents=True, exist_ok=True)
        if not (out_dir / RECORD).is_file():
            save_json({"lgeseg_version": __version__, "rounds": rounds, "finished": False}, out_dir / RECORD)
    for r in range(1, rounds):
        folder = out_dir / "rounds" / f"round_{r}"
        if not is_finished(folder) or overwrite:
            log.info("self-training round %d of %d -> %s", r, rounds, folder)
            _self_train(teacher, images_dir, folder, **settings)
        teacher = folder
    log.info("self-training round %d of %d -> %s", rounds, rounds, out_dir)
    return _self_train(teacher, images_dir, out_dir, rounds=rounds, **settings)


def _self_train(model: str | Path, images_dir: Path, out_dir: Path, source: Sequence[str | Path], epochs: int,
                iterations_per_epoch: int, lr: float | None, trainable: str, device: str | None, seed: int,
                keep_flagged: bool, overwrite: bool, uncertain_voxels: str, confidence: float,
                rounds: int = 1) -> Path:
    """One round of ``adapt_to_center``: ``model`` teaches, its members are fine-tuned into ``out_dir``."""
    masking = uncertain_voxels == "mask"
    teacher = resolve_model(model)
    _, info = read_model_metadata(teacher.members[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"lgeseg_version": __version__, "teacher": str(teacher.path), "teacher_members": len(teacher.members),
              "images": str(images_dir.resolve()), "source": [str(Path(s).resolve()) for s in source],
              "epochs": epochs, "iterations_per_epoch": iterations_per_epoch, "lr": lr, "trainable": trainable,
              "seed": seed, "keep_flagged": keep_flagged, "rounds": rounds,
              "uncertain_voxels": {"mode": uncertain_voxels, **({"confidence": confidence} if masking else {})},
              "finished": False}
    save_json(record, out_dir / RECORD)
    pseudo = out_dir / "pseudo_labels"
    settings = PredictionSettings(device=device, mirroring=True, save_probabilities=masking)  # one prediction
    teacher_predictor = Predictor.from_model(list(teacher.members), settings)
    quality = teacher_predictor.predict_folder(images_dir, pseudo, overwrite=overwrite).quality
    records = sorted(quality, key=lambda record: record.case_id)  # qc.json's order
    choice = choose_pseudo_labels([dataclasses.replace(r, flagged=False) for r in records] if keep_flagged
                                  else records, tolerated=MASKED_FLAGS if masking else ())
    log.info("pseudo-labels: %d case(s) kept, %d dropped by the quality checks (%s)", len(choice.kept),
             len(choice.dropped), ", ".join(f"{c}: {'/'.join(r)}" for c, r in choice.dropped.items()) or "none")
    raw = write_pseudo_dataset(images_dir, pseudo, choice.kept, out_dir / "raw" / TARGET_DATASET,
                               dict(info.labels), dict(info.channel_names))
    if masking:
        masked = mask_pseudo_dataset(raw, pseudo, confidence)
        flagged = {r.case_id: list(r.reasons) for r in records if r.flagged and r.case_id in choice.kept}
        record["uncertain_voxels"] = {"mode": uncertain_voxels, "tolerated_flags": list(MASKED_FLAGS),
                                      "kept_flagged": flagged, **masked}
    pre = out_dir / "pre"
    if not (pre / PLANS_FILE).is_file() or overwrite:
        plan_and_preprocess([raw], pre, plans_from=teacher.members[0], overwrite=overwrite)
    record.update(kept=list(choice.kept), dropped={c: list(r) for c, r in choice.dropped.items()})
    save_json(record, out_dir / RECORD)
    for k, member in enumerate(teacher.members):
        student = out_dir / f"fold_{k}"
        if (student / CHECKPOINT_FINAL_FILE).is_file() and not overwrite:
            continue
        resume = (student / CHECKPOINT_LATEST_FILE).is_file() and not overwrite
        # A member folder without a checkpoint is this adaptation's own start, interrupted before its first
        # epoch ended (out_dir holds adaptation.json, so check_output let us in): begin that member again.
        restart = student.is_dir() and any(student.iterdir()) and not resume
        finetune(member, [pre, *[Path(s) for s in source]], student, trainable=trainable, epochs=epochs, lr=lr,
                 seed=seed + k, resume=resume, overwrite=(overwrite or restart) and student.exists(),
                 iterations_per_epoch=iterations_per_epoch, device=device)
    record["finished"] = True
    save_json(record, out_dir / RECORD)
    return out_dir
