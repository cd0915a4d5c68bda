"""Does nnU-Net v2's own ``ensemble_folders`` (``nnUNetv2_ensemble``) read ``lgeseg_predict --save-probabilities``?

Predicts a few phantom-like volumes on an oblique, anisotropic grid with two tiny untrained models into
two folders (``--save-probabilities``), runs ``nnunetv2.ensembling.ensemble.ensemble_folders`` on them,
and compares the result with lgeseg's own two-model ensemble (``-m A -m B``): label maps voxel for
voxel and geometry. nnunetv2 is not an lgeseg dependency; install it (and its imports) apart, e.g.
``pip install --target /tmp/nnu nnunetv2 ...`` and run with ``PYTHONPATH=/tmp/nnu:.``.

    PYTHONPATH=/tmp/nnu:. python benchmarks/nnunet_ensemble_check.py --work runs/nnunet_ensemble
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lgeseg.files import io  # noqa: E402
from lgeseg.inference import predict_folder  # noqa: E402
from lgeseg.model.folder import write_untrained_model  # noqa: E402
from tests.conftest import _write_input_image  # noqa: E402


def main() -> int:
    """Run the check; prints one line per case and returns 1 on any difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/nnunet_ensemble"))
    parser.add_argument("--cases", type=int, default=2)
    args = parser.parse_args()
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):  # nnunetv2 warns without them
        os.environ.setdefault(name, str(args.work))
    from nnunetv2.ensembling.ensemble import ensemble_folders

    shutil.rmtree(args.work, ignore_errors=True)
    for i in range(args.cases):
        _write_input_image(args.work / "in" / f"case{i}_0000.nii.gz", (3, 33, 29), seed=i)  # oblique grid
    models = [write_untrained_model(args.work / "model_a"), write_untrained_model(args.work / "model_b", seed=5)]
    settings = {"device": "cpu", "postprocess": "none", "mirroring": False}
    for model in models:
        predict_folder(args.work / "in", args.work / f"pred_{model.name}", [model], save_probabilities=True,
                       **settings)
    predict_folder(args.work / "in", args.work / "lgeseg_ensemble", models, **settings)
    ensemble_folders([str(args.work / f"pred_{m.name}") for m in models], str(args.work / "nnunet_ensemble"),
                     num_processes=1)
    failures = 0
    for i in range(args.cases):
        theirs, their_geometry = io.read_label(args.work / "nnunet_ensemble" / f"case{i}.nii.gz")
        ours, our_geometry = io.read_label(args.work / "lgeseg_ensemble" / f"case{i}.nii.gz")
        differ = int(np.count_nonzero(theirs != ours))
        grid = io.geometry_mismatch(their_geometry, our_geometry, tolerance=1e-6)
        failures += bool(differ or grid)
        print(f"case{i}: {differ} voxel(s) differ, geometry {'equal' if not grid else grid}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
