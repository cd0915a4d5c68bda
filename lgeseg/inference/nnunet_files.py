"""Prediction-folder files that nnU-Net v2's ``nnUNetv2_ensemble`` reads (``--save-probabilities``).

``nnUNetv2_ensemble -i FOLDER_A FOLDER_B -o OUT`` (nnunetv2/ensembling/ensemble.py) needs, in each
input folder, ``<case>.npz`` with a ``probabilities`` array (K, z, y, x) on the case's original grid
(the axis order of SimpleITK's arrays), ``<case>.pkl`` with the case's properties (it uses
``sitk_stuff``'s spacing, origin and direction to write the merged label map), and, in the first
folder, ``dataset.json`` (``labels``, ``file_ending``) and ``plans.json`` (its ``image_reader_writer``
names the writer). It takes the argmax of the averaged probabilities, so class k must be label value
k: nnU-Net requires consecutive labels from 0, and so does this export.

The ``.pkl`` is a pickle because nnU-Net reads one; lgeseg writes it from plain lists and floats and
never reads it back (lgeseg itself loads nothing with pickle).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from lgeseg.core.atomic import atomic_output
from lgeseg.core.records import CaseGeometry, save_json

#: The nnU-Net v2 reader/writer whose ``write_seg`` uses the ``sitk_stuff`` written here.
IMAGE_READER_WRITER = "SimpleITKIO"


def nnunet_properties(geometry: CaseGeometry) -> dict[str, Any]:
    """nnU-Net v2's per-case properties for an uncropped image on ``geometry``.

    Returns a dict with ``sitk_stuff`` (spacing (x, y, z) mm, origin, direction as ITK reports them),
    ``spacing`` (z, y, x) mm, and the shape/bounding-box fields nnU-Net's predictor records
    (the whole image: lgeseg's probabilities are already on the original grid).

    Example:
        >>> geometry = CaseGeometry((2, 3, 4), (8.0, 1.25, 1.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> properties = nnunet_properties(geometry)
        >>> properties["sitk_stuff"]["spacing"], properties["spacing"]  # ITK's (x, y, z), then (z, y, x)
        ((1.5, 1.25, 8.0), [8.0, 1.25, 1.5])
    """
    shape = [int(v) for v in geometry.shape]
    return {
        "sitk_stuff": {"spacing": tuple(float(s) for s in reversed(geometry.spacing)),
                       "origin": tuple(float(v) for v in geometry.origin),
                       "direction": tuple(float(v) for v in geometry.direction)},
        "spacing": [float(s) for s in geometry.spacing],
        "shape_before_cropping": shape,
        "shape_after_cropping_and_before_resampling": shape,
        "bbox_used_for_cropping": [[0, n] for n in shape],
    }


def check_consecutive_labels(labels: dict[str, int]) -> None:
    """Raise ``ValueError`` unless the label values are 0, 1, ..., K-1 (what ``nnUNetv2_ensemble`` assumes).

    Example:
        >>> check_consecutive_labels({"background": 0, "blood_pool": 1, "myocardium": 2})  # passes
        >>> check_consecutive_labels({"background": 0, "myocardium": 2})
        Traceback (most recent call last):
        ValueError: --save-probabilities writes nnU-Net's format, whose class k is label value k; the model's labels ...
    """
    values = sorted(labels.values())
    if values != list(range(len(values))):
        raise ValueError(f"--save-probabilities writes nnU-Net's format, whose class k is label value k; the model's "
                         f"labels {labels} are not consecutive from 0")


def probability_files(output_dir: Path, case_id: str) -> tuple[Path, Path]:
    """``(<case>.npz, <case>.pkl)`` in ``output_dir``: the files ``write_case_probabilities`` writes.

    Example:
        >>> [p.name for p in probability_files(Path("out"), "p1")]
        ['p1.npz', 'p1.pkl']
    """
    return output_dir / f"{case_id}.npz", output_dir / f"{case_id}.pkl"


def write_case_probabilities(output_dir: Path, case_id: str, probabilities: np.ndarray, geometry: CaseGeometry,
                             labels: dict[str, int]) -> list[Path]:
    """Write ``<case>.npz`` and ``<case>.pkl`` for one case; returns both paths.

    Args:
        output_dir: the prediction folder.
        case_id: file stem.
        probabilities: float (K, Z, Y, X) class probabilities on ``geometry``'s grid, class k = label value k.
        geometry: the input image's geometry.
        labels: label name -> value (also stored as ``label_values``/``label_names`` in the npz).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((2, 3, 4), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> probabilities = np.full((3, 2, 3, 4), 1 / 3, np.float32)
        >>> labels = {"background": 0, "lv": 1, "myo": 2}
        >>> paths = write_case_probabilities(Path(tmp.name), "p1", probabilities, geometry, labels)
        >>> [p.name for p in paths], np.load(paths[0])["probabilities"].shape
        (['p1.npz', 'p1.pkl'], (3, 2, 3, 4))
        >>> tmp.cleanup()
    """
    return write_probability_files(probability_files(output_dir, case_id), probabilities, geometry, labels)


def write_probability_files(files: tuple[Path, Path], probabilities: np.ndarray, geometry: CaseGeometry,
                            labels: dict[str, int]) -> list[Path]:
    """``write_case_probabilities`` into the given ``(npz, pkl)`` files (``probability_files``); returns them.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> geometry = CaseGeometry((1, 2, 2), (8.0, 1.25, 1.25), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> files = probability_files(Path(tmp.name), "p1")
        >>> paths = write_probability_files(files, np.full((2, 1, 2, 2), 0.5, np.float32), geometry, {"bg": 0, "lv": 1})
        >>> [p.name for p in paths]
        ['p1.npz', 'p1.pkl']
        >>> tmp.cleanup()
    """
    npz, pkl = files
    with atomic_output(npz, suffix=".npz") as tmp:
        np.savez_compressed(tmp, probabilities=probabilities.astype(np.float32, copy=False),
                            label_values=np.array(sorted(labels.values())),
                            label_names=np.array(sorted(labels, key=labels.get)))
    with atomic_output(pkl) as tmp, open(tmp, "wb") as handle:
        pickle.dump(nnunet_properties(geometry), handle, protocol=4)
    return [npz, pkl]


def write_ensemble_metadata(output_dir: Path, labels: dict[str, int], channel_names: dict[str, str],
                            file_ending: str) -> None:
    """Write the ``dataset.json`` and ``plans.json`` that ``nnUNetv2_ensemble`` reads from a prediction folder.

    ``plans.json`` holds only what the ensembling uses (the image reader/writer and label manager);
    it is not an lgeseg plan (the model's plan stays in ``MODEL/plans.json``).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> write_ensemble_metadata(Path(tmp.name), {"background": 0, "lv": 1}, {"0": "LGE"}, ".nii.gz")
        >>> sorted(p.name for p in Path(tmp.name).iterdir())
        ['dataset.json', 'plans.json']
        >>> tmp.cleanup()
    """
    save_json({"channel_names": channel_names, "labels": labels, "numTraining": 0, "file_ending": file_ending},
              output_dir / "dataset.json")
    save_json({"plans_name": "lgeseg_prediction", "image_reader_writer": IMAGE_READER_WRITER,
               "label_manager": "LabelManager",
               "note": "written by lgeseg_predict --save-probabilities for nnUNetv2_ensemble; not an lgeseg plan"},
              output_dir / "plans.json")
