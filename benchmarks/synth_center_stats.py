"""Per-center statistics of the synthetic LGE phantom: do the centers differ measurably?

For every center: blood-pool and myocardium intensities after each image's own min-max
normalization (mean, 5th, 50th, 95th percentile over all labelled voxels), the raw intensity
range and dtype, in-plane spacing, slice spacing and slice counts.

Usage:
    python benchmarks/synth_center_stats.py                      # generate 10 cases/center, print
    python benchmarks/synth_center_stats.py --data OUTDIR        # datasets written by lgeseg_synth
    python benchmarks/synth_center_stats.py --write-docs         # also update docs/synthetic_data.md
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, write_section

from lgeseg.datasets.layout import list_cases, load_dataset_info
from lgeseg.files.io import read_image, read_label
from lgeseg.synth import generate_multicenter

DOC = ROOT / "docs" / "synthetic_data.md"


def center_stats(dataset_dir: Path) -> dict[str, object]:
    """Statistics of one raw dataset (see the module docstring)."""
    info = load_dataset_info(dataset_dir)
    blood, myo, ratios = [], [], []
    raw_lo, raw_hi, in_plane, thickness, slices, dtypes = [], [], [], [], [], set()
    for case in list_cases(dataset_dir):
        image, geometry = read_image(case.image_paths[0])
        label, _ = read_label(case.label_path)
        normalized = (image - image.min()) / max(float(image.max() - image.min()), 1e-12)
        blood.append(normalized[label == 1])
        myo.append(normalized[label == 2])
        ratios.append(np.median(myo[-1]) / np.median(blood[-1]))
        raw_lo.append(float(image.min()))
        raw_hi.append(float(image.max()))
        in_plane.append(geometry.spacing[2])
        thickness.append(geometry.spacing[0])
        slices.append(geometry.shape[0])
        dtypes.add(_stored_dtype(case.image_paths[0]))
    return {
        "name": info.name, "vendor": info.vendor, "field": info.field_strength,
        "blood": _summary(np.concatenate(blood)), "myo": _summary(np.concatenate(myo)),
        "ratio": float(np.median(ratios)), "raw": (min(raw_lo), max(raw_hi)), "dtype": "/".join(sorted(dtypes)),
        "in_plane": (min(in_plane), max(in_plane)), "thickness": (min(thickness), max(thickness)),
        "slices": (min(slices), max(slices)), "cases": len(slices),
    }


def _stored_dtype(path: Path) -> str:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return sitk.GetPixelIDValueAsString(reader.GetPixelID())


def _summary(values: np.ndarray) -> tuple[float, float, float, float]:
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return float(values.mean()), float(p5), float(p50), float(p95)


def _range(pair: tuple[float, float], fmt: str = "{:.4g}") -> str:
    lo, hi = pair
    return fmt.format(lo) if np.isclose(lo, hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


def markdown_table(rows: list[dict[str, object]]) -> str:
    """The statistics as two Markdown tables (intensities, grid)."""
    lines = [
        "| center | vendor | blood pool mean / p5 / p50 / p95 | myocardium mean / p5 / p50 / p95 "
        "| median myo/blood | raw range | stored as |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        blood = " / ".join(f"{v:.2f}" for v in r["blood"])  # type: ignore[union-attr]
        myo = " / ".join(f"{v:.2f}" for v in r["myo"])  # type: ignore[union-attr]
        lines.append(f"| {r['name']} | {r['vendor']} {r['field']} | {blood} | {myo} | {r['ratio']:.2f} "
                     f"| {_range(r['raw'])} | {r['dtype']} |")  # type: ignore[arg-type]
    lines += ["", "| center | cases | in-plane spacing (mm) | slice spacing (mm) | slices |",
              "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['cases']} | {_range(r['in_plane'], '{:.2f}')} "  # type: ignore[arg-type]
                     f"| {_range(r['thickness'], '{:g}')} | {_range(r['slices'], '{:d}')} |")  # type: ignore[arg-type]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="folder holding center1..center4 (default: generate)")
    parser.add_argument("--cases", type=int, default=10, help="cases per center when generating")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOC}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seconds = None
        if args.data is None:
            start = time.process_time()
            folders = generate_multicenter(tmp, cases_per_center=args.cases, seed=args.seed)
            seconds = time.process_time() - start
            source = f"`generate_multicenter(cases_per_center={args.cases}, seed={args.seed})`"
        else:
            folders = sorted(p for p in args.data.iterdir() if (p / "dataset.json").is_file())
            source = f"datasets in `{args.data}`"
        rows = [center_stats(folder) for folder in folders]
    table = markdown_table(rows)
    header = f"Measured by `benchmarks/synth_center_stats.py` on {source}."
    if seconds is not None:
        header += f" Generating and writing the {args.cases * len(rows)} cases took {seconds:.1f} s of CPU time."
    print(header + "\n\n" + table)
    if args.write_docs:
        write_section(DOC, f"{header}\n\n{table}\n", "synth_center_stats")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
