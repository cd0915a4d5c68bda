"""Seconds per case of ``lgeseg_predict`` for a 12 x 256 x 256 case, start-up included.

Writes one 12 x 256 x 256 synthetic LGE case (center 1's phantom, stored at the model's in-plane
spacing so nothing is resampled) and runs the CLI as a subprocess several times (median), on the CPU
with a fixed number of threads, and on the GPU when one is available:

* a trained model (``--model``, e.g. the demo's ``lgeseg_demo/model``): each inference window (``roi``,
  the default; ``sliding``, nnU-Net's; ``slice``) with and without mirroring, per case of a folder,
  and each window's Dice and speed on synthetic cases of the four phantom centers (``--accuracy-cases`` each);
* an untrained network of the ``default`` preset (speed does not depend on the weights).

Also times ``import`` of the CLI alone (the start-up share). Replaces the "## Prediction speed" section
of docs/PERFORMANCE.md.

Run it when the CPU is otherwise idle:
``python benchmarks/predict_speed.py --model lgeseg_demo/model [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, write_section

SECTION = "## Prediction speed"


def make_model(model_dir: Path, spacing: tuple[float, float, float], preset: str = "default") -> None:
    """Write a model folder with the ``preset`` planner preset's untrained network (``describe_model`` says which).

    ``default``: 32 ... 512 features for a 256 x 256 patch (what a GPU plan gives);
    ``cpu``: the CPU-only preset's 16 ... 256 features for its 128 x 128 patch.
    """
    from lgeseg.core.records import LABELS, NormalizationConfig, Plan
    from lgeseg.network import build_unet
    from lgeseg.planning.planner_presets import get_preset
    from lgeseg.planning.topology import plan_topology
    from lgeseg.training import ModelInfo, save_checkpoint, write_model_metadata

    settings = get_preset(preset)
    patch = (256, 256) if preset == "default" else (settings.max_patch, settings.max_patch)
    topology = plan_topology(patch, in_channels=1, num_classes=3, base_features=settings.base_features,
                             max_features=settings.max_features)
    plan = Plan(name="2d", preset=preset, target_spacing=spacing, patch_size=patch, batch_size=12,
                normalization=NormalizationConfig(), topology=topology, labels=dict(LABELS))
    info = ModelInfo(lgeseg_version="bench", labels=dict(LABELS), channel_names={"0": "LGE"}, recipe=None,
                     datasets=("bench",), postprocessing="lcc")
    write_model_metadata(model_dir, plan, info)
    save_checkpoint(model_dir / "checkpoint_final.pt", {"network": build_unet(topology, seed=0).state_dict()})


def _pad_or_crop(volume: np.ndarray, size: int, fill: float) -> np.ndarray:
    """Centre ``volume`` (z, y, x) on a size x size in-plane grid, padding with ``fill`` or cropping."""
    out = np.full((volume.shape[0], size, size), fill, dtype=volume.dtype)
    src, dst = [], []
    for n in volume.shape[1:]:
        lo = max((n - size) // 2, 0)
        start = max((size - n) // 2, 0)
        length = min(n, size)
        src.append(slice(lo, lo + length))
        dst.append(slice(start, start + length))
    out[:, dst[0], dst[1]] = volume[:, src[0], src[1]]
    return out


def make_cases(input_dir: Path, in_plane_spacing: tuple[float, float], count: int = 1,
               slices: int | None = 12) -> None:
    """Write ``count`` synthetic center-1 LGE cases ``bench<k>_0000.nii.gz``, each slices x 256 x 256
    (``slices`` None: the phantom's own number, as in training), and their reference label maps into
    ``input_dir/labels``.

    Each phantom is generated at center 1's own resolution (about 1.6 mm), centred on a 256 x 256
    grid (air around it) and stored with ``in_plane_spacing``: with a model trained on center 1 the
    heart has its usual size in pixels and nothing is resampled.
    """
    from lgeseg.core.records import CaseGeometry
    from lgeseg.files import io
    from lgeseg.synth import generate_case

    for index in range(count):
        image, label, _ = generate_case(1, index, seed=7, num_slices=slices)
        image = _pad_or_crop(image, 256, float(np.percentile(image, 1)))
        label = _pad_or_crop(label, 256, 0)
        geometry = CaseGeometry(image.shape, (10.0, *in_plane_spacing), (0.0, 0.0, 0.0),
                                (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
        io.write_image(input_dir / f"bench{index}_0000.nii.gz", image, geometry)
        io.write_label(input_dir / "labels" / f"bench{index}.nii.gz", label, geometry)


def make_center_cases(root: Path, count: int) -> dict[str, Path]:
    """Write ``count`` synthetic cases of each phantom center on its own grid (spacing, slices, size), with
    their label maps in ``<center>/labels``; returns center name -> image folder. Seed 7: not the demo's cases."""
    from lgeseg.files import io
    from lgeseg.synth import generate_case

    folders = {}
    for center in (1, 2, 3, 4):
        folder = root / f"center{center}"
        for index in range(count):
            image, label, geometry = generate_case(center, index, seed=7)
            io.write_image(folder / f"c{center}_{index:03d}_0000.nii.gz", image, geometry)
            io.write_label(folder / "labels" / f"c{center}_{index:03d}.nii.gz", label, geometry)
        folders[f"center{center}"] = folder
    return folders


def window_accuracy(model: Path, folders: dict[str, Path], work: Path, threads: int) -> str:
    """Markdown table: per center and inference window (mirroring on), mean Dice and seconds per case in one process."""
    import torch

    from lgeseg.experiments.scoring import predict_and_score

    torch.set_num_threads(threads)
    lines = ["| center | window | blood pool Dice | myocardium Dice | s per case (in one process) |",
             "| --- | --- | --- | --- | --- |"]
    for center, folder in folders.items():
        count = len(list((folder / "labels").glob("*.nii.gz")))
        for window in ("roi", "sliding", "slice"):
            score = predict_and_score(folder, folder / "labels", [model], work / center / window,
                                      work / "eval" / center / window, device="cpu", mirroring=True, window=window)
            seconds = score.predict_seconds / count
            dice = score.summary["structures"]
            lines.append(f"| {center} ({count} cases) | {window} | {dice['blood_pool']['dice']['mean']:.3f} | "
                         f"{dice['myocardium']['dice']['mean']:.3f} | {seconds:.2f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def _pin(threads: int) -> None:
    """Restrict the calling process to ``threads`` CPU cores (Linux), so a big machine acts like a small one."""
    if hasattr(os, "sched_setaffinity") and threads < len(os.sched_getaffinity(0)):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])


def time_command(command: list[str], threads: int, repeats: int) -> list[float]:
    """Wall-clock seconds of ``command`` run ``repeats`` times on ``threads`` cores with as many threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       preexec_fn=lambda: _pin(threads))
        times.append(time.perf_counter() - start)
    return times


#: Settings: row label -> extra ``lgeseg_predict`` arguments.
SETTINGS = {
    "roi (default), no mirroring": ["--no-mirroring"],
    "roi (default), mirroring": [],
    "sliding window (nnU-Net), no mirroring": ["--window", "sliding", "--no-mirroring"],
    "sliding window (nnU-Net), mirroring": ["--window", "sliding"],
    "whole slices, no mirroring": ["--window", "slice", "--no-mirroring"],
    "whole slices, mirroring": ["--window", "slice"],
}


def predict_command(input_dir: Path, output_dir: Path, model_dir: Path, device: str, extra: list[str]) -> list[str]:
    """The ``lgeseg_predict`` command line (as ``python -c``, so no installed entry point is needed)."""
    command = [sys.executable, "-c", "from lgeseg.cli.predict import console_main; console_main()",
               "-i", str(input_dir), "-o", str(output_dir), "-m", str(model_dir), "--device", device, "--overwrite"]
    return command + extra


def machine_description(threads: int) -> str:
    """CPU model, cores used, torch version and GPU name (if any), one line."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"CPU {cpu} ({os.cpu_count()} logical cores, runs pinned to {threads}), GPU {gpu}, "
            f"torch {torch.__version__}")


def describe_model(model_dir: Path) -> str:
    """Preset, feature widths, parameter count and (for a trained model) training data and length, one phrase."""
    from lgeseg.model.folder import read_model_metadata
    from lgeseg.network import build_unet, count_parameters

    plan, info = read_model_metadata(model_dir)
    million = count_parameters(build_unet(plan.topology)) / 1e6
    text = f"`{plan.preset}` preset, features {plan.topology.features_per_stage}, {million:.2f} M parameters"
    if info.recipe is not None and info.datasets != ("bench",):
        text += (f", trained on {', '.join(info.datasets)} for {info.recipe.epochs} epochs x "
                 f"{info.recipe.iterations_per_epoch} iterations of {info.recipe.batch_size} slices")
    return text


def run(repeats: int, threads: int, output_md: Path | None, slices: int = 12, model: Path | None = None,
        folder_cases: int = 8, accuracy_cases: int = 6) -> str:
    """Run every measurement; returns the markdown section (and writes it when ``output_md``)."""
    import torch

    from lgeseg.model.folder import read_model_metadata

    spacing = (10.0, 1.25, 1.25) if model is None else (10.0, *read_model_metadata(model)[0].target_spacing[1:])
    rows, networks = [], []
    devices = [("cpu", f"cpu, {threads} threads")] + ([("cuda", "cuda (float32)")] if torch.cuda.is_available() else [])

    def measure(name: str, model_dir: Path, input_dir: Path, settings: list[str], per_case: int = 1) -> None:
        for device, label in devices:
            for setting in settings:
                command = predict_command(input_dir, Path(tmp) / "out", model_dir, device, SETTINGS[setting])
                times = [t / per_case for t in time_command(command, threads, repeats)]
                rows.append((f"{name}, {setting}", label, times))
                print(f"{rows[-1][0]:<90} {label:<16} median {statistics.median(times):.2f} s  {times}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        make_cases(tmp_path / "one", spacing[1:], 1, slices)
        make_cases(tmp_path / "folder", spacing[1:], folder_cases, slices)
        startup = time_command([sys.executable, "-c", "import os, lgeseg.cli.predict; os._exit(0)"], threads, repeats)
        rows.append(("start-up only (import of the CLI)", f"cpu, {threads} threads", startup))
        if model is not None:
            networks.append(f"trained: {describe_model(model)}")
            measure("trained model, one case", model, tmp_path / "one", list(SETTINGS))
            measure(f"trained model, per case of a {folder_cases}-case folder", model, tmp_path / "folder",
                    ["roi (default), no mirroring", "roi (default), mirroring"], per_case=folder_cases)
            folders = make_center_cases(tmp_path / "centers", accuracy_cases)
            accuracy = window_accuracy(model, folders, tmp_path / "accuracy", threads)
        else:
            accuracy = ""
        make_model(tmp_path / "model_default", spacing, "default")
        networks.append(f"untrained: {describe_model(tmp_path / 'model_default')} (its 256 x 256 patch covers the "
                        "slice, so `roi` is one whole-slice pass)")
        measure("untrained `default` network, one case", tmp_path / "model_default", tmp_path / "one",
                ["roi (default), no mirroring", "roi (default), mirroring"])
    lines = [SECTION, "", f"`benchmarks/predict_speed.py{'' if model is None else ' --model MODEL'}` (median of "
             f"{repeats} runs of `lgeseg_predict` as a subprocess: start-up, reading, preprocessing, prediction, "
             "resampling back, postprocessing (lcc) and writing included; synthetic center-1 cases of "
             f"{slices} x 256 x 256 (the phantom centred in air) at {spacing[1]:g} mm in-plane, no resampling; "
             "windows: docs/inference.md). Networks: " + "; ".join(networks) + ".",
             "", f"Machine: {machine_description(threads)}.", "",
             "| what | device | median s per case | runs (s) |", "| --- | --- | --- | --- |"]
    for name, label, times in rows:
        lines.append(f"| {name} | {label} | {statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} |")
    if accuracy:
        lines += ["", f"Accuracy and speed by window of the same trained model, mirroring on, on {accuracy_cases} "
                  "synthetic cases per phantom center on the center's own grid (seed 7, not the model's training "
                  "cases; centers 2-4 are unseen in training and resampled to the model's spacing):", "", accuracy]
    text = "\n".join(lines) + "\n\n"
    if output_md is not None:
        write_section(output_md, text, SECTION)
    return text


def main(argv: list[str] | None = None) -> int:
    """Parse ``--repeats``, ``--threads``, ``--output``/``--no-write`` and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (OMP_NUM_THREADS)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    parser.add_argument("--slices", type=int, default=12, help="slices of the case (12 for the reported numbers)")
    parser.add_argument("--model", type=Path, default=None, help="a trained model folder (e.g. lgeseg_demo/model)")
    parser.add_argument("--folder-cases", type=int, default=8, help="cases of the folder timed per case")
    parser.add_argument("--accuracy-cases", type=int, default=6, help="cases per center for the Dice by window")
    args = parser.parse_args(argv)
    print(run(args.repeats, args.threads, None if args.no_write else args.output, args.slices, args.model,
              args.folder_cases, args.accuracy_cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
