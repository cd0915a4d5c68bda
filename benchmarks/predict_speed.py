"""Seconds per case of ``lgeseg_predict`` for a 12 x 256 x 256 case, start-up included.

Builds a model folder with the default preset's network for a 256 x 256 patch (untrained weights:
speed does not depend on them), writes one 12 x 256 x 256 LGE-like case, and runs the CLI as a
subprocess several times (median), on the CPU with a fixed number of torch threads, with and
without mirroring, and on the GPU when one is available. Also times ``import`` of the CLI alone
(the start-up share). Appends (or replaces) a "## Prediction speed" section in docs/PERFORMANCE.md.

Run it when the CPU is otherwise idle:  ``python benchmarks/predict_speed.py [--repeats 3]``
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

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Prediction speed"


def make_model(model_dir: Path, spacing: tuple[float, float, float], preset: str = "default") -> str:
    """Write a model folder with the ``preset`` planner preset's network; returns a description of it.

    ``default``: 32 ... 512 features for a 256 x 256 patch (what a GPU plan gives);
    ``cpu``: the CPU-only preset's 16 ... 256 features for its 128 x 128 patch.
    """
    from lgeseg.network import build_unet, count_parameters
    from lgeseg.planning.presets import get_preset
    from lgeseg.planning.topology import plan_topology
    from lgeseg.records import LABELS, NormalizationConfig, Plan
    from lgeseg.training import ModelInfo, save_checkpoint, write_model_metadata

    settings = get_preset(preset)
    patch = (256, 256) if preset == "default" else (settings.max_patch, settings.max_patch)
    topology = plan_topology(patch, in_channels=1, num_classes=3, base_features=settings.base_features,
                             max_features=settings.max_features)
    plan = Plan(name="2d", preset=preset, target_spacing=spacing, patch_size=patch, batch_size=12,
                normalization=NormalizationConfig(), topology=topology, labels=dict(LABELS))
    info = ModelInfo(lgeseg_version="bench", labels=dict(LABELS), channel_names={"0": "LGE"}, recipe={},
                     augmentation="none", datasets=("bench",), postprocessing="lcc")
    write_model_metadata(model_dir, plan, info)
    network = build_unet(topology, seed=0)
    save_checkpoint(model_dir / "checkpoint_final.pt", {"network": network.state_dict()})
    return (f"`{preset}` preset: features {topology.features_per_stage}, "
            f"{count_parameters(network) / 1e6:.2f} M parameters")


def make_case(input_dir: Path, spacing: tuple[float, float, float], slices: int = 12) -> None:
    """Write ``bench_0000.nii.gz``: slices x 256 x 256, a dark ring in noise, at ``spacing`` (mm, z y x)."""
    from lgeseg import io
    from lgeseg.records import CaseGeometry

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    radius = np.hypot(yy - 128, xx - 120)
    image = rng.normal(200, 40, size=(slices, 256, 256)).astype(np.float32)
    image[:, (radius > 18) & (radius < 28)] -= 120
    geometry = CaseGeometry((slices, 256, 256), spacing, (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    io.write_image(input_dir / "bench_0000.nii.gz", image, geometry)


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


def predict_command(input_dir: Path, output_dir: Path, model_dir: Path, device: str, mirroring: bool) -> list[str]:
    """The ``lgeseg_predict`` command line (as ``python -c``, so no installed entry point is needed)."""
    command = [sys.executable, "-c", "import sys; from lgeseg.cli.predict import main; sys.exit(main())",
               "-i", str(input_dir), "-o", str(output_dir), "-m", str(model_dir), "--device", device, "--overwrite"]
    return command + ([] if mirroring else ["--no-mirroring"])


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


def write_section(path: Path, text: str) -> None:
    """Replace the "## Prediction speed" section of ``path`` with ``text`` (append if absent)."""
    old = path.read_text() if path.is_file() else "# Performance\n"
    start = old.find(SECTION)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + ("" if end < 0 else old[end + 1:])
    path.write_text(new)


def run(repeats: int, threads: int, output_md: Path | None, slices: int = 12) -> str:
    """Run every measurement; returns the markdown section (and writes it when ``output_md``)."""
    import torch

    spacing = (10.0, 1.25, 1.25)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        networks = [make_model(tmp_path / f"model_{preset}", spacing, preset) for preset in ("cpu", "default")]
        make_case(tmp_path / "in", spacing, slices)
        startup = time_command([sys.executable, "-c", "import lgeseg.cli.predict"], threads, repeats)
        rows.append(("start-up only (import of the CLI)", f"cpu, {threads} threads", startup))
        devices = [("cpu", f"cpu, {threads} threads")]
        if torch.cuda.is_available():
            devices.append(("cuda", "cuda (float32)"))
        for preset in ("cpu", "default"):
            for device, label in devices:
                for mirroring in (False, True):
                    command = predict_command(tmp_path / "in", tmp_path / "out", tmp_path / f"model_{preset}",
                                              device, mirroring)
                    times = time_command(command, threads, repeats)
                    rows.append((f"{slices}x256x256, {'with' if mirroring else 'no'} mirroring, `{preset}` network",
                                 label, times))
                    print(f"{rows[-1][0]:<56} {label:<22} median {statistics.median(times):.2f} s  {times}", flush=True)
    lines = [SECTION, "", f"`benchmarks/predict_speed.py` (median of {repeats} runs of `lgeseg_predict` as a "
             "subprocess, start-up, reading, preprocessing, prediction, resampling back, postprocessing (lcc) and "
             f"writing included; one {slices} x 256 x 256 case at 1.25 mm in-plane, no resampling; "
             f"whole-slice inference (one forward pass per slice and flip); networks: {'; '.join(networks)}).",
             "", f"Machine: {machine_description(threads)}.", "",
             "| what | device | median s | runs (s) |", "| --- | --- | --- | --- |"]
    for name, label, times in rows:
        lines.append(f"| {name} | {label} | {statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} |")
    text = "\n".join(lines) + "\n"
    if output_md is not None:
        write_section(output_md, text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Parse ``--repeats``, ``--threads``, ``--output``/``--no-write`` and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (OMP_NUM_THREADS)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    parser.add_argument("--slices", type=int, default=12, help="slices of the case (12 for the reported numbers)")
    args = parser.parse_args(argv)
    print(run(args.repeats, args.threads, None if args.no_write else args.output, args.slices))
    return 0


if __name__ == "__main__":
    sys.exit(main())
