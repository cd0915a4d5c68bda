"""Lay out the real data for ``lgeseg_experiments --raw/--test``: cine (Dijon) as the training center,
the real LGE of myops_lge (Shanghai) as the unseen center (issue 15's second Table 5).

Splits by patient with a fixed seed, so both frames of an ACDC patient fall on the same side:

* ``cine``: ``../shared/data/acdc_cine``, 24 patients (48 volumes) to train on, 6 patients (12 volumes)
  to test the in-center column on;
* ``myops``: ``../shared/data/myops_lge``, 9 patients as the unseen center's training pool (the
  subjects that transfer learning fine-tunes on, that histogram matching and the CycleGAN see
  unlabelled, and that the multi-center models add), 16 patients to test on.

The folders hold symlinks to the original files (nothing is copied; the data stays outside the
repository). Prints the ``lgeseg_experiments`` command that uses them.

Usage::

    python benchmarks/real_layout.py --out runs/exp_real_data
    lgeseg_experiments -o runs/exp_real --raw runs/exp_real_data/raw --test runs/exp_real_data/test \\
        --train-center cine -e 1 2 3 --block-counts --amounts --epochs 10
    python benchmarks/paper_table5.py --run runs/exp_real --marker paper_table5_real
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
from pathlib import Path

from _common import ROOT, link_subset

DATA = ROOT.parent / "shared" / "data"
#: center name -> (source dataset folder under ../shared/data, training patients, seed of the split)
CENTERS = {"cine": ("acdc_cine", 24), "myops": ("myops_lge", 9)}
SPLIT_SEED = 0


def patient_of(case_id: str) -> str:
    """The patient a case belongs to: ``acdc_patient071_frame01`` -> ``acdc_patient071``; other ids unchanged."""
    return re.sub(r"_frame\d+$", "", case_id)


def case_ids(dataset: Path) -> list[str]:
    """Case ids of a raw dataset, from ``labelsTr/<case>.nii.gz`` (sorted)."""
    return sorted(p.name[: -len(".nii.gz")] for p in (dataset / "labelsTr").glob("*.nii.gz"))


def split_by_patient(cases: list[str], train_patients: int, seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """``(train cases, test cases)``: ``train_patients`` patients drawn with ``seed``, all their cases.

    Raises:
        ValueError: fewer than ``train_patients + 1`` patients (nothing would be left to test on).
    """
    patients = sorted({patient_of(c) for c in cases})
    if len(patients) <= train_patients:
        raise ValueError(f"{len(patients)} patients: expected more than {train_patients} (some must be left to test)")
    chosen = set(random.Random(seed).sample(patients, train_patients))
    return [c for c in cases if patient_of(c) in chosen], [c for c in cases if patient_of(c) not in chosen]


def make_layout(out: Path, data: Path = DATA) -> dict[str, tuple[int, int]]:
    """Write ``out/raw/<center>`` and ``out/test/<center>`` (symlinks); returns ``{center: (train, test cases)}``.

    Raises:
        FileNotFoundError: a source dataset is missing under ``data``.
    """
    counts = {}
    for center, (folder, train_patients) in CENTERS.items():
        source = data / folder
        if not (source / "dataset.json").is_file():
            raise FileNotFoundError(f"{source}/dataset.json: not found; the real data lives in ../shared/data")
        train, test = split_by_patient(case_ids(source), train_patients)
        for part, cases in (("raw", train), ("test", test)):
            target = out / part / center
            if target.exists():
                shutil.rmtree(target)
            link_subset(source, target, cases)
        counts[center] = (len(train), len(test))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for raw/ and test/")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding acdc_cine and myops_lge")
    args = parser.parse_args()
    for center, (train, test) in make_layout(args.out, args.data).items():
        print(f"{center}: {train} training cases, {test} test cases")
    print(f"lgeseg_experiments -o runs/exp_real --raw {args.out / 'raw'} --test {args.out / 'test'} "
          "--train-center cine -e 1 2 3 --block-counts --amounts --epochs 10")


if __name__ == "__main__":
    main()
