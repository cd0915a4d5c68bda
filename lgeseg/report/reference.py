"""Published adult reference ranges for the LV end-diastolic volume and mass, by sex, absolute and per BSA.

The default table (``DEFAULT_RANGES``) takes each quantity's mean and SD from a publication whose text
was read (docs/clinical_use.md, "Reference ranges", quotes the sentences and says what was searched):

- EDV (mL): Hudsmith et al. 2005 (``HUDSMITH_2005``), abstract: 160 +- 29 mL men, 135 +- 26 mL women;
  108 healthy volunteers (63 men, 45 women), SSFP cine, manual analysis.
- EDV/BSA (mL/m2): Alfakih et al. 2003 (``ALFAKIH_2003``), abstract, SSFP rows: 82.3 +- 14.7 men,
  77.7 +- 10.8 women; 60 subjects (30 men, 30 women) aged 20-65, short-axis cine, modified Simpson's rule.
- LV mass/BSA (g/m2): Petersen et al. 2017, UK Biobank (``PETERSEN_2017``), abstract: 53 +- 9 men,
  42 +- 7 women; 804 healthy Caucasian adults aged 45-74, SSFP at 1.5 T, manual analysis.

The absolute LV mass (g) has no default range, on purpose: no source whose table could be read gave
an absolute SSFP LV mass by sex. The mass is compared per BSA only, so it needs the patient's height
and weight; without them ``compare_case`` says so in the mass row's range text (``MASS_NEEDS_BSA``).
A site's own table (``load_reference_ranges``) may give an absolute mass range, and is then used.

The publications give mean +- SD; the limits of normal are lgeseg's, mean +- 2 SD (``LIMIT_SDS``: about the
central 95% of a normal distribution), not limits printed in the papers. Conventions differ (Kawel-Boehm et
al. 2020, Table 1, read on the journal's page): Hudsmith 2005 (1.5 T, ages 21-68) counts the papillary
muscles in the LV mass, so not in the EDV; Petersen 2017 counts them in the LV volume, so not in the mass, as
lgeseg's labels do; Alfakih 2003 is not in that table and its abstract does not say. The three cohorts
differ in size and age, so the rows are not one population's. A site should give its own table
(``load_reference_ranges``, ``lgeseg_report --reference-ranges FILE.json``).

Two caveats the report prints with the ranges: they are for a cine end-diastolic volume, while the LGE
volume is that of one (usually mid-diastolic) phase and tends to be lower; and lgeseg's labels count the
papillary muscles as blood pool (as ACDC and MyoPS annotate them), which makes the volume larger and
the mass smaller than a table that counts them in the mass (as Hudsmith 2005's EDV does).

The body surface area is Mosteller's: sqrt(height cm x weight kg / 3600) m^2.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lgeseg.core.records import load_json

#: The sources of the default ranges, as read (docs/clinical_use.md quotes the sentences).
HUDSMITH_2005 = ("Hudsmith LE, Petersen SE, Francis JM, Robson MD, Neubauer S. Normal human left and right "
                 "ventricular and left atrial dimensions using steady state free precession magnetic resonance "
                 "imaging. J Cardiovasc Magn Reson 2005;7:775-782 (doi:10.1080/10976640500295516), abstract: "
                 "LV end-diastolic volume 160 +- 29 mL (men) vs 135 +- 26 mL (women); limits = mean +- 2 SD")
ALFAKIH_2003 = ("Alfakih et al. Normal human left and right ventricular dimensions for MRI as assessed by turbo "
                "gradient echo and steady-state free precession imaging sequences. J Magn Reson Imaging "
                "2003;17(3):323-329 (doi:10.1002/jmri.10262, PMID 12594722), abstract, SSFP: LV EDV/BSA "
                "82.3 +- 14.7 (men), 77.7 +- 10.8 (women) mL/m2; limits = mean +- 2 SD")
PETERSEN_2017 = ("Petersen SE, Aung N, Sanghvi MM, et al. Reference ranges for cardiac structure and function using "
                 "cardiovascular magnetic resonance (CMR) in Caucasians from the UK Biobank population cohort. "
                 "J Cardiovasc Magn Reson 2017 (doi:10.1186/s12968-017-0327-9), abstract: LV mass 53 +- 9 g/m2 (men) "
                 "vs 42 +- 7 g/m2 (women); limits = mean +- 2 SD")
#: Quantities a range can be given for, with their units (the default table has no absolute ``mass`` row;
#: a site's own table may give one).
QUANTITIES: dict[str, str] = {"edv": "mL", "edv_per_bsa": "mL/m2", "mass": "g", "mass_per_bsa": "g/m2"}
#: Reference ranges apply from this age (years); younger patients get none.
ADULT_AGE = 18.0
#: The default limits of normal are mean +- this many SDs (the sources give mean +- SD only).
LIMIT_SDS = 2.0
#: A comparison's range text when the ranges have no row for the quantity.
NO_RANGE = "no reference range for this quantity"
#: The absolute mass's range text when the ranges give the mass per BSA only and the BSA is unknown.
MASS_NEEDS_BSA = ("none: the LV mass reference range is per BSA and needs the patient's height and weight "
                  "(lgeseg_report --height-cm CM --weight-kg KG, or the DICOM tags PatientSize and PatientWeight)")
#: The absolute mass's range text when the ranges give the mass per BSA only and the BSA is known.
MASS_PER_BSA_ONLY = "none: the LV mass reference range is per BSA (mass / BSA)"


@dataclasses.dataclass(frozen=True)
class ReferenceRange:
    """One published range.

    Attributes:
        quantity: a key of ``QUANTITIES``.
        sex: ``"M"`` or ``"F"``.
        mean, sd: the reference population's mean and standard deviation.
        lower, upper: the limits of normal.
        source: the publication and table.
    """

    quantity: str
    sex: str
    mean: float
    sd: float
    lower: float
    upper: float
    source: str = ""


def _published(quantity: str, sex: str, mean: float, sd: float, source: str) -> ReferenceRange:
    return ReferenceRange(quantity, sex, mean, sd, mean - LIMIT_SDS * sd, mean + LIMIT_SDS * sd, source)


#: Each row's mean and SD as its source prints them (the module docstring; tests/test_report.py checks the
#: numbers against the quoted text, and that docs/clinical_use.md shows the same table). No absolute mass
#: row: no readable source gave one (the module docstring); the mass is compared per BSA.
DEFAULT_RANGES: tuple[ReferenceRange, ...] = (
    _published("edv", "M", 160.0, 29.0, HUDSMITH_2005), _published("edv", "F", 135.0, 26.0, HUDSMITH_2005),
    _published("edv_per_bsa", "M", 82.3, 14.7, ALFAKIH_2003), _published("edv_per_bsa", "F", 77.7, 10.8, ALFAKIH_2003),
    _published("mass_per_bsa", "M", 53.0, 9.0, PETERSEN_2017),
    _published("mass_per_bsa", "F", 42.0, 7.0, PETERSEN_2017),
)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A measured value against its reference range.

    Attributes:
        quantity: a key of ``QUANTITIES``.
        value: the measured value in the quantity's unit (NaN when it cannot be computed, e.g. no BSA).
        lower, upper: the range used (NaN when none applies).
        status: ``"within"``, ``"below"``, ``"above"`` or ``""`` (no range applies).
        range_text: e.g. ``"102-218 mL (men)"``, or why there is no range.
    """

    quantity: str
    value: float
    lower: float
    upper: float
    status: str
    range_text: str


def body_surface_area(height_cm: float | None, weight_kg: float | None) -> float:
    """Mosteller's body surface area, m^2; NaN when height or weight is unknown or not positive.

    Example:
        >>> round(body_surface_area(180, 80), 2), body_surface_area(None, 80)
        (2.0, nan)
    """
    if height_cm is None or weight_kg is None or height_cm <= 0 or weight_kg <= 0:
        return math.nan
    return math.sqrt(height_cm * weight_kg / 3600.0)


def _range_for(ranges: Sequence[ReferenceRange], quantity: str, sex: str) -> tuple[float, float, str] | None:
    found = [r for r in ranges if r.quantity == quantity and (r.sex == sex or not sex)]
    if not found:
        return None
    lower, upper = min(r.lower for r in found), max(r.upper for r in found)
    who = {"M": "men", "F": "women"}.get(sex, "sex unknown: men and women together")
    return lower, upper, f"{lower:.0f}-{upper:.0f} {QUANTITIES[quantity]} ({who})"


def compare(quantity: str, value: float, sex: str = "", age_years: float | None = None,
            ranges: Sequence[ReferenceRange] = DEFAULT_RANGES) -> Comparison:
    """Compare ``value`` with the range for ``sex`` (``"M"``, ``"F"``; else both sexes' limits together).

    Example:
        >>> compare("edv", 230.0, "M").status, compare("edv", 230.0, "M").range_text
        ('above', '102-218 mL (men)')
        >>> compare("edv", 100.0).range_text  # sex unknown: from the women's lower to the men's upper limit
        '83-218 mL (sex unknown: men and women together)'
        >>> compare("mass", 100.0, "F", age_years=12).status, compare("mass", 100.0, "F", age_years=12).range_text
        ('', 'no adult range for a patient under 18')
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"reference quantity {quantity!r}: expected one of {', '.join(QUANTITIES)}")
    if age_years is not None and age_years < ADULT_AGE:
        return Comparison(quantity, value, math.nan, math.nan, "", f"no adult range for a patient under {ADULT_AGE:g}")
    if math.isnan(value):
        return Comparison(quantity, value, math.nan, math.nan, "", "")
    found = _range_for(ranges, quantity, sex if sex in ("M", "F") else "")
    if found is None:
        return Comparison(quantity, value, math.nan, math.nan, "", NO_RANGE)
    lower, upper, text = found
    status = "below" if value < lower else "above" if value > upper else "within"
    return Comparison(quantity, value, lower, upper, status, text)


def compare_case(edv_ml: float, mass_g: float, sex: str = "", age_years: float | None = None,
                 bsa_m2: float = math.nan, ranges: Sequence[ReferenceRange] = DEFAULT_RANGES) -> list[Comparison]:
    """EDV and mass, absolute and (when ``bsa_m2`` is known) per BSA, against ``ranges``.

    Args:
        edv_ml: the LV blood-pool volume, mL.
        mass_g: the myocardial mass, g.
        sex: ``"M"``, ``"F"``, else unknown (both sexes' limits together).
        age_years: the patient's age; under ``ADULT_AGE`` no range applies. None: unknown (taken as adult).
        bsa_m2: the body surface area, m^2 (``body_surface_area``); NaN when height or weight is unknown.
        ranges: the reference table (default ``DEFAULT_RANGES``).

    Returns:
        Four ``Comparison``: ``edv``, ``edv_per_bsa``, ``mass``, ``mass_per_bsa`` (a per-BSA value is NaN
        without ``bsa_m2``). When ``ranges`` give the mass per BSA only (as the default table does), the
        absolute mass has no range and its ``range_text`` says why: ``MASS_NEEDS_BSA`` without a BSA,
        ``MASS_PER_BSA_ONLY`` with one.

    Example:
        >>> [(c.quantity, round(c.value), c.status) for c in compare_case(150.0, 120.0, "M", 50, bsa_m2=2.0)]
        [('edv', 150, 'within'), ('edv_per_bsa', 75, 'within'), ('mass', 120, ''), ('mass_per_bsa', 60, 'within')]
        >>> compare_case(150.0, 120.0, "M", 50, bsa_m2=2.0)[3].range_text
        '35-71 g/m2 (men)'
        >>> without_bsa = compare_case(150.0, 120.0, "M", 50)[2].range_text  # no height and weight: no BSA
        >>> without_bsa.startswith("none: the LV mass reference range is per BSA"), "--height-cm" in without_bsa
        (True, True)
    """
    mass = compare("mass", mass_g, sex, age_years, ranges)
    if mass.range_text == NO_RANGE and _range_for(ranges, "mass_per_bsa", sex if sex in ("M", "F") else ""):
        mass = dataclasses.replace(mass, range_text=MASS_PER_BSA_ONLY if bsa_m2 > 0 else MASS_NEEDS_BSA)
    return [compare("edv", edv_ml, sex, age_years, ranges),
            compare("edv_per_bsa", edv_ml / bsa_m2 if bsa_m2 > 0 else math.nan, sex, age_years, ranges),
            mass,
            compare("mass_per_bsa", mass_g / bsa_m2 if bsa_m2 > 0 else math.nan, sex, age_years, ranges)]


def load_reference_ranges(path: str | Path) -> tuple[ReferenceRange, ...]:
    """Read a site's own ranges: a JSON list of ``{"quantity", "sex", "mean", "sd", "lower", "upper", "source"}``.

    Raises ``ValueError`` naming the file, the entry and the field when an entry is incomplete or unknown.

    Example:
        >>> import json, tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "ranges.json"
        ...     _ = path.write_text(json.dumps([{"quantity": "edv", "sex": "F", "mean": 120, "sd": 20, "lower": 80,
        ...                                      "upper": 160, "source": "our centre, 2024"}]))
        ...     load_reference_ranges(path)[0].upper
        160.0
    """
    data: Any = load_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of reference ranges, found {type(data).__name__}")
    ranges = []
    for number, entry in enumerate(data):
        try:
            item = ReferenceRange(str(entry["quantity"]), str(entry["sex"]), float(entry["mean"]), float(entry["sd"]),
                                  float(entry["lower"]), float(entry["upper"]), str(entry.get("source", path)))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: entry {number}: expected quantity, sex, mean, sd, lower, upper (numbers) and "
                             f"source; found {entry!r} ({err})") from err
        if item.quantity not in QUANTITIES or item.sex not in ("M", "F") or not item.lower < item.upper:
            raise ValueError(f"{path}: entry {number}: quantity must be one of {', '.join(QUANTITIES)}, sex 'M' or "
                             f"'F', lower < upper; found {item.quantity!r}, {item.sex!r}, {item.lower}-{item.upper}")
        ranges.append(item)
    return tuple(ranges)
