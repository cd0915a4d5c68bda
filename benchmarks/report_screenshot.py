"""The screenshot of an ``lgeseg_report`` page in docs/clinical_use.md, taken in a real headless browser.

Writes a few phantom cases of a center the model did not train on (as DICOM series written by
SimpleITK, the way a PACS export arrives), predicts them with ``lgeseg_predict`` (DICOM input, so the
series reading is part of what is shown), builds the report with ``lgeseg_report`` and opens its
``index.html`` in Debian's ``chromium`` (headless, no sandbox, no GPU, no network services, a fresh
profile) to save a PNG screenshot.

    apt-get install -y chromium
    python benchmarks/report_screenshot.py --model MODEL_DIR --work runs/report_demo \\
        --screenshot docs/images/report_page.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lgeseg import io  # noqa: E402
from lgeseg.cli.predict import main as predict_main  # noqa: E402
from lgeseg.cli.report import main as report_main  # noqa: E402
from lgeseg.synth import generate_case  # noqa: E402

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")


def write_series(folder: Path, image: np.ndarray, geometry: object, number: int, description: str) -> None:
    """One MR slice file per z with the position, orientation and identifiers a scanner writes."""
    volume = io.to_sitk(np.clip(image, -32768, 32767).astype(np.int16), geometry)  # type: ignore[arg-type]
    d = volume.GetDirection()
    orientation = "\\".join(f"{v:.10f}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    uid = f"1.2.826.0.1.3680043.8.498.{number}"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    folder.mkdir(parents=True, exist_ok=True)
    for z in range(volume.GetSize()[2]):
        plane = volume[:, :, z]
        position = "\\".join(f"{v:.10f}" for v in volume.TransformIndexToPhysicalPoint((0, 0, z)))
        for key, value in {"0008|0060": "MR", "0020|000e": uid, "0020|0011": str(number), "0008|103e": description,
                           "0020|0013": str(z + 1), "0020|0037": orientation, "0020|0032": position,
                           "0008|0018": f"{uid}.{z + 1}", "0020|000d": "1.2.826.0.1.3680043.8.498.1"}.items():
            plane.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"IM{z:04d}.dcm"))
        writer.Execute(plane)


def screenshot(page: Path, target: Path, width: int, height: int) -> None:
    """Open ``page`` in headless chromium with a fresh profile and save a PNG of the window to ``target``."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lgeseg-chromium-") as profile:
        command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                   f"--screenshot={target.resolve()}", page.resolve().as_uri()]
        subprocess.run(command, check=True, timeout=120, capture_output=True)
    print(f"screenshot: {target}")


def main() -> int:
    """Phantom DICOM -> lgeseg_predict -> lgeseg_report -> chromium screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="model folder")
    parser.add_argument("--work", type=Path, default=Path("runs/report_demo"), help="work folder (replaced)")
    parser.add_argument("--screenshot", type=Path, default=Path("docs/images/report_page.png"))
    parser.add_argument("--center", type=int, default=2, help="phantom center of the cases (default 2)")
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--size", default="1200x1500", help="browser window, WIDTHxHEIGHT pixels")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    export = args.work / "pacs_export"
    for index in range(args.cases):
        image, _, geometry = generate_case(args.center, index, seed=2026)
        write_series(export / f"patient{index + 1}" / "lge", image, geometry, 10 + index, f"SAX LGE patient{index + 1}")
    predictions = args.work / "predictions"
    if predict_main(["-i", str(export), "-o", str(predictions), "-m", str(args.model), "--device", "cpu"]) != 0:
        return 1
    if report_main([str(predictions), "-i", str(export), "--title", "lgeseg report: phantom center "
                    f"{args.center} (unseen), {args.cases} DICOM series"]) != 0:
        return 1
    width, height = (int(v) for v in args.size.split("x"))
    screenshot(predictions / "report" / "index.html", args.screenshot, width, height)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
