"""How close is the synthetic LGE phantom to real LGE? Its four centers against ../shared/data/myops_lge.

Per case, from the raw datasets (the phantom's written by ``generate_multicenter``, the real one as
stored): in-plane and through-plane spacing, slice count, matrix and field of view; intensities
normalized per image by its 99.5th percentile (histograms, blood-pool and myocardium medians);
the myocardium/blood-pool ratio of medians (scale-free); the largest blood-pool cross-section.
Prints Markdown tables, draws ``docs/images/phantom_vs_real.png`` and (with --write-docs) replaces
the section between the markers in docs/synthetic_data.md.

    python benchmarks/phantom_vs_real.py --write-docs
    python benchmarks/phantom_vs_real.py --label before --no-figure     # print only
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from lgeseg.datasets.layout import list_cases
from lgeseg.files.io import read_image, read_label
from lgeseg.synth import generate_multicenter

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "myops_lge"
DOC = ROOT / "docs" / "synthetic_data.md"
FIGURE = ROOT / "docs" / "images" / "phantom_vs_real.png"
START, END = "<!-- phantom_vs_real:start -->", "<!-- phantom_vs_real:end -->"
#: Histogram bins of intensity / the image's 99.5th percentile.
BINS = np.linspace(0.0, 1.2, 49)


def case_stats(image: np.ndarray, label: np.ndarray, spacing: tuple[float, ...]) -> dict[str, object]:
    """Statistics of one case: image (z, y, x), labels 0/1/2, spacing mm (z, y, x)."""
    scale = float(np.percentile(image, 99.5)) or 1.0
    normalized = image / scale
    blood, myo = normalized[label == 1], normalized[label == 2]
    areas = (label == 1).sum(axis=(1, 2)) * spacing[1] * spacing[2]
    nz, ny, nx = image.shape
    return {
        "in_plane": float(spacing[2]), "through_plane": float(spacing[0]), "slices": int(nz),
        "matrix": (int(ny), int(nx)), "fov": (ny * spacing[1], nx * spacing[2]),
        "blood": float(np.median(blood)), "myo": float(np.median(myo)),
        "ratio": float(np.median(myo) / np.median(blood)),
        "myo_p90": float(np.percentile(myo, 90)) / float(np.median(blood)),  # bright (scar) myocardium vs blood
        "max_blood_area": float(areas.max()),
        "histogram": np.histogram(np.clip(normalized, 0.0, BINS[-1]), BINS)[0] / normalized.size,
    }


def dataset_stats(dataset_dir: Path) -> list[dict[str, object]]:
    """``case_stats`` of every labelled case of a raw dataset."""
    rows = []
    for case in list_cases(dataset_dir):
        image, geometry = read_image(case.image_paths[0])
        label, _ = read_label(case.label_path)
        rows.append(case_stats(image, label, geometry.spacing))
    return rows


def _span(rows: list[dict[str, object]], key: str, fmt: str = "{:.2f}") -> str:
    values = np.array([r[key] for r in rows], float)
    lo, mid, hi = np.percentile(values, [0, 50, 100])
    if np.isclose(lo, hi):
        return fmt.format(lo)
    return f"{fmt.format(mid)} ({fmt.format(lo)}-{fmt.format(hi)})"


def markdown_table(groups: dict[str, list[dict[str, object]]]) -> str:
    """Median (min-max) of each statistic per dataset."""
    lines = ["| data | cases | in-plane (mm) | slice spacing (mm) | slices | FOV x (mm) | matrix x | "
             "blood / p99.5 | myo / p99.5 | myo/blood | myo p90 / blood | largest blood-pool section (mm^2) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, rows in groups.items():
        fov = [{"v": r["fov"][1]} for r in rows]  # type: ignore[index]
        matrix = [{"v": r["matrix"][1]} for r in rows]  # type: ignore[index]
        lines.append(f"| {name} | {len(rows)} | {_span(rows, 'in_plane')} | {_span(rows, 'through_plane', '{:.1f}')} "
                     f"| {_span(rows, 'slices', '{:.0f}')} | {_span(fov, 'v', '{:.0f}')} "
                     f"| {_span(matrix, 'v', '{:.0f}')} | {_span(rows, 'blood')} | {_span(rows, 'myo')} "
                     f"| {_span(rows, 'ratio')} | {_span(rows, 'myo_p90')} "
                     f"| {_span(rows, 'max_blood_area', '{:.0f}')} |")
    return "\n".join(lines)


def draw(groups: dict[str, list[dict[str, object]]], path: Path) -> None:
    """Four panels: mean normalized histogram, myo/blood ratios, spacings, slices vs FOV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    centres = (BINS[:-1] + BINS[1:]) / 2
    for index, (name, rows) in enumerate(groups.items()):
        real = name == "myops_lge"
        style = {"color": "black" if real else f"C{index}", "lw": 2.5 if real else 1.2}
        histogram = np.mean([r["histogram"] for r in rows], axis=0)
        axes[0].plot(centres, histogram, label=name, **style)
        axes[1].scatter(np.full(len(rows), index) + np.linspace(-0.15, 0.15, len(rows)),
                        [r["ratio"] for r in rows], s=12, color=style["color"])
        axes[2].scatter([r["in_plane"] for r in rows], [r["through_plane"] for r in rows], s=14,
                        color=style["color"], label=name, marker="s" if real else "o")
        axes[3].scatter([r["fov"][1] for r in rows], [r["slices"] for r in rows], s=14,  # type: ignore[index]
                        color=style["color"], label=name, marker="s" if real else "o")
    axes[0].set(yscale="log", xlabel="intensity / image p99.5", ylabel="fraction of voxels",
                title="intensity histogram (mean over cases)")
    axes[0].legend(fontsize=8)
    axes[1].set(xticks=range(len(groups)), ylabel="median myocardium / median blood pool",
                title="myocardium / blood-pool ratio")
    axes[1].set_xticklabels(list(groups), rotation=30, fontsize=8)
    axes[2].set(xlabel="in-plane spacing (mm)", ylabel="slice spacing (mm)", title="spacing")
    axes[3].set(xlabel="field of view, x (mm)", ylabel="slices", title="coverage")
    axes[3].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_docs(text: str) -> None:
    """Replace the text between the markers in docs/synthetic_data.md."""
    doc = DOC.read_text()
    if START not in doc or END not in doc:
        raise ValueError(f"{DOC}: markers {START} / {END} not found")
    before, rest = doc.split(START, 1)
    DOC.write_text(f"{before}{START}\n{text}\n{END}{rest.split(END, 1)[1]}")


def main() -> int:
    """Generate the phantom centers, measure them and the real scans, print, draw, document."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=REAL, help="real LGE raw dataset (default myops_lge)")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder holding center1..center4 written by lgeseg_synth (default: generate)")
    parser.add_argument("--cases", type=int, default=10, help="phantom cases per center")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOC}")
    args = parser.parse_args()
    if not args.real.is_dir():
        raise SystemExit(f"{args.real}: real LGE dataset not found")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.data is None:
            folders = generate_multicenter(tmp, cases_per_center=args.cases, seed=args.seed)
            source = f"`generate_multicenter(cases_per_center={args.cases}, seed={args.seed})`"
        else:
            folders = sorted(p for p in args.data.iterdir() if (p / "dataset.json").is_file())
            source = f"the datasets in `{args.data.name}`"
        groups = {folder.name: dataset_stats(folder) for folder in folders}
    groups[args.real.name] = dataset_stats(args.real)
    table = markdown_table(groups)
    text = (f"Measured by `benchmarks/phantom_vs_real.py` on {source} and `{args.real.name}` "
            f"({time.perf_counter() - start:.0f} s). Median (min-max) over cases; intensities divided by each "
            "image's 99.5th percentile.\n\n" + table + "\n")
    print(text)
    if not args.no_figure:
        draw(groups, FIGURE)
    if args.write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
