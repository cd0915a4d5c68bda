"""Published adult reference ranges for the LV end-diastolic volume and mass, by sex, absolute and per BSA.

The default table (``DEFAULT_RANGES``) was meant to be that of Kawel-Boehm et al., "Reference ranges
("normal values") for cardiovascular magnetic resonance (CMR) in adults and children: 2020 update", J
Cardiovasc Magn Reson 2020;22:87, Table 2 (adults, cine bSSFP, weighted means and SDs over the pooled
studies, limits = mean +- 2 SD). Its numbers were entered from memory and are NOT verified: the paper's
table could not be found to compare them with (docs/clinical_use.md, "Reference ranges", says what was
searched). What was checked is the paper's Table 1, the studies behind its adult LV values: twelve
short-axis bSSFP studies at 1.5 T and 3 T, eight counting the papillary muscles in the LV mass and four
in the LV volume; which convention the pooled values follow was not checked either. A site should give
its own table (``load_reference_ranges``, ``lgeseg_report --reference-ranges FILE.json``).

Two caveats the report prints with the ranges: they are for a cine end-diastolic volume, while the LGE
volume is that of one (usually mid-diastolic) phase and tends to be lower; and lgeseg's labels count the
papillary muscles as blood pool (as ACDC and MyoPS annotate them), which makes the volume larger and
the mass smaller than a table that counts them in the mass.

The body surface area is Mosteller's: sqrt(height cm x weight kg / 3600) m^2.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lgeseg.core.records import load_json

#: Where the default ranges come from.
KAWEL_BOEHM_2020 = ("Kawel-Boehm N et al. Reference ranges (\"normal values\") for cardiovascular magnetic resonance "
                    "(CMR) in adults and children: 2020 update. J Cardiovasc Magn Reson 2020;22:87, Table 2 (adults, "
                    "bSSFP; limits = mean +- 2 SD); values entered from memory, NOT verified against the paper")
#: Quantities a range can be given for, with their units.
QUANTITIES: dict[str, str] = {"edv": "mL", "edv_per_bsa": "mL/m2", "mass": "g", "mass_per_bsa": "g/m2"}
#: Reference ranges apply from this age (years); younger patients get none.
ADULT_AGE = 18.0


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
    source: str = KAWEL_BOEHM_2020


def _two_sd(quantity: str, sex: str, mean: float, sd: float) -> ReferenceRange:
    return ReferenceRange(quantity, sex, mean, sd, mean - 2 * sd, mean + 2 * sd)


#: Meant as Kawel-Boehm et al. 2020, Table 2 (see the module docstring), but entered from memory and NOT verified:
#: a search of the stored copies of the paper and of public code citing it did not find the table's numbers
#: (docs/clinical_use.md lists what was searched). Compare them with the table before relying on them, or give
#: the site's own ranges (``load_reference_ranges``). docs/clinical_use.md shows the same numbers (a test checks).
DEFAULT_RANGES: tuple[ReferenceRange, ...] = (
    _two_sd("edv", "M", 162.0, 28.0), _two_sd("edv", "F", 130.0, 22.0),
    _two_sd("edv_per_bsa", "M", 82.0, 12.0), _two_sd("edv_per_bsa", "F", 76.0, 11.0),
    _two_sd("mass", "M", 128.0, 22.0), _two_sd("mass", "F", 90.0, 16.0),
    _two_sd("mass_per_bsa", "M", 64.0, 9.0), _two_sd("mass_per_bsa", "F", 53.0, 8.0),
)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A measured value against its reference range.

    Attributes:
        quantity: a key of ``QUANTITIES``.
        value: the measured value in the quantity's unit (NaN when it cannot be computed, e.g. no BSA).
        lower, upper: the range used (NaN when none applies).
        status: ``"within"``, ``"below"``, ``"above"`` or ``""`` (no range applies).
        range_text: e.g. ``"106-218 mL (men)"``, or why there is no range.
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
        ('above', '106-218 mL (men)')
        >>> compare("edv", 100.0).range_text  # sex unknown: from the women's lower to the men's upper limit
        '86-218 mL (sex unknown: men and women together)'
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
        return Comparison(quantity, value, math.nan, math.nan, "", "no reference range for this quantity")
    lower, upper, text = found
    status = "below" if value < lower else "above" if value > upper else "within"
    return Comparison(quantity, value, lower, upper, status, text)


def compare_case(edv_ml: float, mass_g: float, sex: str = "", age_years: float | None = None,
                 bsa_m2: float = math.nan, ranges: Sequence[ReferenceRange] = DEFAULT_RANGES) -> list[Comparison]:
    """EDV and mass, absolute and (when ``bsa_m2`` is known) per BSA, against ``ranges``.

    Example:
        >>> [(c.quantity, round(c.value), c.status) for c in compare_case(150.0, 120.0, "M", 50, bsa_m2=2.0)]
        [('edv', 150, 'within'), ('edv_per_bsa', 75, 'within'), ('mass', 120, 'within'), ('mass_per_bsa', 60, 'within')]
    """
    return [compare("edv", edv_ml, sex, age_years, ranges),
            compare("edv_per_bsa", edv_ml / bsa_m2 if bsa_m2 > 0 else math.nan, sex, age_years, ranges),
            compare("mass", mass_g, sex, age_years, ranges),
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
