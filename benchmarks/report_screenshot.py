"""The screenshot of an ``lgeseg_report`` page in docs/clinical_use.md, taken in a real headless browser.

Writes phantom cases of a center the model did not train on as DICOM series written by SimpleITK, the
way a PACS export arrives, each with a patient and a study (PatientID, sex, age, height, weight,
StudyID, accession number, study date and description: made up, ``PATIENTS``), predicts them with
``lgeseg_predict`` (DICOM input, so the series reading is part of what is shown; ``--dicom-seg`` when
highdicom is installed), builds the report with ``lgeseg_report`` (no ``--title``: the page is titled
with the study) and opens its ``index.html`` in Debian's ``chromium`` (headless, no sandbox, no GPU, no
network services, a fresh profile) to save a PNG screenshot. Any model folder serves: the report's
numbers are only as good as its contours, which the screenshot shows.

    apt-get install -y chromium
    python benchmarks/report_screenshot.py --model MODEL_DIR --work runs/report_demo \\
        --screenshot docs/images/report_page.png
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lgeseg.cli.predict import main as predict_main  # noqa: E402
from lgeseg.cli.report import main as report_main  # noqa: E402
from lgeseg.synth import generate_case  # noqa: E402
from lgeseg.synth.dicom_series import write_dicom_series  # noqa: E402

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")


#: Made-up patients and studies of the phantom cases (DICOM tag -> value), one per case.
PATIENTS: tuple[dict[str, str], ...] = (
    {"0010|0020": "PHANTOM-0042", "0010|0040": "F", "0010|1010": "058Y", "0010|1020": "1.64", "0010|1030": "61",
     "0020|0010": "CMR-2026-118", "0008|0050": "ACC-77120", "0008|0020": "20260312",
     "0008|1030": "CMR viability (LGE)"},
    {"0010|0020": "PHANTOM-0043", "0010|0040": "M", "0010|1010": "066Y", "0010|1020": "1.80", "0010|1030": "84",
     "0020|0010": "CMR-2026-121", "0008|0050": "ACC-77135", "0008|0020": "20260313",
     "0008|1030": "CMR viability (LGE)"},
)


def write_series(folder: Path, image: np.ndarray, geometry: object, number: int, description: str,
                 patient: dict[str, str] | None = None) -> None:
    """One MR slice file per z with the position, orientation and identifiers a scanner writes, and ``patient``."""
    uid = f"1.2.826.0.1.3680043.8.498.{number}"
    write_dicom_series(folder, image, geometry, uid, number, description,  # type: ignore[arg-type]
                       {"0020|0052": f"{uid}.7", "0008|0070": "Phantom Medical", **(patient or {})})


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
    parser.add_argument("--model", required=True, type=Path, help="model folder (or an installed model's name)")
    parser.add_argument("--work", type=Path, default=Path("runs/report_demo"), help="work folder (replaced)")
    parser.add_argument("--screenshot", type=Path, default=Path("docs/images/report_page.png"))
    parser.add_argument("--center", type=int, default=1, help="phantom center of the cases (default 1)")
    parser.add_argument("--index", type=int, default=0, help="first phantom case index (default 0)")
    parser.add_argument("--cases", type=int, default=1, choices=range(1, len(PATIENTS) + 1),
                        help="cases, one patient and study each (default 1: the page shows one study)")
    parser.add_argument("--size", default="1200x1500", help="browser window, WIDTHxHEIGHT pixels")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    export = args.work / "pacs_export"
    for k in range(args.cases):
        image, _, geometry = generate_case(args.center, args.index + k, seed=2026)
        write_series(export / f"patient{k + 1}" / "lge", image, geometry, 10 + k, "SAX LGE", PATIENTS[k])
    predictions = args.work / "predictions"
    seg = ["--dicom-seg"] if importlib.util.find_spec("highdicom") else []
    if predict_main(["-i", str(export), "-o", str(predictions), "-m", str(args.model), "--device", "cpu", *seg]) != 0:
        return 1
    if report_main([str(predictions), "-i", str(export)]) != 0:
        return 1
    width, height = (int(v) for v in args.size.split("x"))
    screenshot(predictions / "report" / "index.html", args.screenshot, width, height)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
