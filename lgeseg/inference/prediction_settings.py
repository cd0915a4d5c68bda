"""``PredictionSettings``: how a ``Predictor`` predicts and what it writes, one frozen record checked when built.

The names a setting takes (windows, checkpoints, postprocessing, harmonization) are checked here, so a
wrong one is refused before any model is loaded, with a message naming the field, what was expected and
what was found.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import torch

from lgeseg.evaluation.postprocessing import POSTPROCESSING_VARIANTS
from lgeseg.inference.adaptation import AdaptationSettings
from lgeseg.inference.sliding_window import check_step
from lgeseg.model.folder import CHECKPOINT_NAMES

#: Inference strategies (``PredictionSettings.window``; ``ensemble.predict_volume``'s ``window``).
WINDOWS = ("roi", "sliding", "slice")
#: Checkpoints a model folder may be predicted with (``model.folder.find_checkpoint``).
CHECKPOINTS = CHECKPOINT_NAMES
#: Harmonization names (``harmonization.make_harmonizer``); ``"cyclegan:GAN_DIR"`` names a CycleGAN folder.
HARMONIZATIONS = ("none", "histogram", "cyclegan:GAN_DIR")


def _refuse(field: str, expected: str, found: Any) -> ValueError:
    return ValueError(f"PredictionSettings.{field}: expected {expected}; found {found!r}")


@dataclasses.dataclass(frozen=True)
class PredictionSettings:
    """How cases are predicted and which files are written; every field is checked when the record is built.

    Attributes:
        checkpoint: ``"final"``, ``"best"`` or ``"latest"``. Without ``checkpoint_final.pt`` a folder holding
            ``checkpoint_latest.pt`` (training not finished) is refused, any other uses ``checkpoint_best.pt``
            with a warning (``model.folder.checkpoint_for_inference``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; None or ``"auto"``: CUDA when available
            (``core.device.resolve_device``).
        window: ``"roi"`` (localize with whole slices, refine a box around the ventricle), ``"sliding"``
            (nnU-Net's training-patch tiles everywhere) or ``"slice"`` (whole slices only).
        step: sliding-window stride as a fraction of the patch, in (0, 1].
        mirroring: in-plane flip test-time augmentation (4 passes per tile).
        batch_size: tiles per forward pass (None: a device default).
        postprocess: ``"none"``, ``"lcc"`` or ``"lcc_per_label"``; None: the first model's choice (``model.json``).
        harmonize: ``"histogram"`` (the model folder's reference) or ``"cyclegan:GAN_DIR"`` applied to each
            image before it is predicted (``lgeseg.harmonization``), ``"none"``, or None.
        adaptation: test-time adaptation to each case (``adaptation.AdaptationSettings``; default: none).
        save_probabilities: also write ``<case>.npz`` and ``<case>.pkl`` (``nnUNetv2_ensemble``'s input).
        overlays: also write ``<case>_overlay.png`` (contours over every slice).
        dicom_seg: for DICOM input, also write ``<case>.seg.dcm`` (needs highdicom, ``lgeseg[dicom]``).
        allow_unusual_spacing: accept spacing outside ``io.IN_PLANE_SPACING_MM``/``THROUGH_PLANE_SPACING_MM``.
        num_readers: threads reading the next cases of a folder while one is predicted (nnU-Net's ``-npp``).
        num_writers: threads postprocessing and writing finished cases (nnU-Net's ``-nps``).

    Example:
        >>> PredictionSettings(window="sliding", mirroring=False).window
        'sliding'
        >>> PredictionSettings(window="tiles")
        Traceback (most recent call last):
        ValueError: PredictionSettings.window: expected one of roi, sliding, slice; found 'tiles'
        >>> PredictionSettings(checkpoint="checkpoint_best.pth")
        Traceback (most recent call last):
        ValueError: PredictionSettings.checkpoint: expected one of final, best, latest; found 'checkpoint_best.pth'
    """

    checkpoint: str = "final"
    device: str | None = None
    window: str = "roi"
    step: float = 0.5
    mirroring: bool = True
    batch_size: int | None = None
    postprocess: str | None = None
    harmonize: str | None = None
    adaptation: AdaptationSettings = dataclasses.field(default_factory=AdaptationSettings)
    save_probabilities: bool = False
    overlays: bool = False
    dicom_seg: bool = False
    allow_unusual_spacing: bool = False
    num_readers: int = 1
    num_writers: int = 1

    def __post_init__(self) -> None:
        for field, value, choices in (("checkpoint", self.checkpoint, CHECKPOINTS), ("window", self.window, WINDOWS)):
            if value not in choices:
                raise _refuse(field, f"one of {', '.join(choices)}", value)
        if self.postprocess is not None and self.postprocess not in POSTPROCESSING_VARIANTS:
            raise _refuse("postprocess", f"one of {', '.join(POSTPROCESSING_VARIANTS)} or None (the model's choice)",
                          self.postprocess)
        if self.harmonize is not None and not _harmonization_name(self.harmonize):
            raise _refuse("harmonize", f"one of {', '.join(HARMONIZATIONS)} or None", self.harmonize)
        if self.device is not None and not _device_name(self.device):
            raise _refuse("device", "cpu, cuda, cuda:N (a GPU's index), mps, auto or None", self.device)
        try:
            check_step(self.step)
        except ValueError:
            raise _refuse("step", "the sliding-window stride, a fraction of the patch in (0, 1] (0.5: tiles overlap "
                          "by half)", self.step) from None
        if self.batch_size is not None and not _positive_int(self.batch_size):
            raise _refuse("batch_size", "a whole number >= 1 or None (a device default)", self.batch_size)
        for field, value in (("num_readers", self.num_readers), ("num_writers", self.num_writers)):
            if not _positive_int(value):
                raise _refuse(field, "a whole number >= 1 (threads)", value)
        if not isinstance(self.adaptation, AdaptationSettings):
            raise _refuse("adaptation", "an AdaptationSettings", self.adaptation)

    def provenance(self, postprocess: str) -> dict[str, Any]:
        """The settings that change a label map, as ``lgeseg_predictions.json`` records them.

        ``postprocess`` is the variant applied (this record's, or the model's when it is None).

        Example:
            >>> PredictionSettings().provenance("lcc")["postprocess"]
            'lcc'
        """
        return {"checkpoint": self.checkpoint, "mirroring": self.mirroring, "window": self.window, "step": self.step,
                "postprocess": postprocess, "harmonize": self.harmonize, "adaptation": self.adaptation.to_record()}


def _harmonization_name(name: object) -> bool:
    return isinstance(name, str) and (name in ("none", "histogram")
                                      or (name.startswith("cyclegan:") and len(name) > len("cyclegan:")))


def _device_name(name: object) -> bool:
    if name == "auto":
        return True
    try:
        torch.device(name)  # type: ignore[arg-type]
    except (RuntimeError, TypeError):
        return False
    return True


def _positive_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1
