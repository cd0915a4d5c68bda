"""How the four synthetic centers differ: one ``CenterProfile`` per center, all in one place.

The profiles follow Table 1 of the paper (EMIDEC, MSCMR, VH, STPAU): grid (in-plane spacing,
slice thickness, number of slices) and scanner (vendor, field strength, imaging time after
contrast injection). The appearance fields model what makes images from different hospitals
look different even for the same heart: how well the operator nulled the myocardium (inversion
time error), the blood/myocardium contrast (imaging time after injection), noise, coil
sensitivity (bias field), blur, ghosting, and the vendor's intensity range and curve.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CenterProfile:
    """Acquisition and appearance of one synthetic center.

    Attributes:
        number: 1..4; datasets are named ``center<number>``, cases ``c<number>_<nnn>``.
        paper_analogue: the real dataset of the paper's Table 1 this center imitates.
        vendor: scanner vendor written to dataset.json.
        field_strengths_t: field strengths (tesla) a case is drawn from.
        in_plane_spacing_mm: (low, high) in-plane pixel size, mm; one value drawn per case.
        slice_thickness_mm: thicknesses a case is drawn from, mm.
        slice_gap_mm: (low, high) gap between neighbouring slices, mm; slice spacing = thickness + gap
            (0 for a contiguous stack; LGE stacks of a few slices are often spread over the ventricle).
        num_slices: (low, high) inclusive number of short-axis slices.
        fov_mm: (low, high) field of view along the read-out axis, mm.
        max_matrix: upper bound on the in-plane matrix, pixels.
        phase_fov_fraction: (low, high) phase-encode FOV / read-out FOV (rectangular FOV).
        direction: ``"identity"``, ``"flipped"`` (RAS-style, diag(-1,-1,1)) or ``"oblique"``
            (realistic short-axis cosines, drawn per case).
        imaging_time_min: (low, high) minutes after contrast injection; later means longer
            T1 of blood and myocardium, i.e. less blood/myocardium contrast.
        ti_error: (mean, sd) relative inversion-time error; 0 nulls the myocardium, positive
            (TI too long) leaves it grey, negative (too short) leaves it grey and dims the blood.
        noise: Rician noise sd relative to the blood-pool signal.
        bias_strength: peak-to-peak log amplitude of the smooth coil-sensitivity field.
        psf_sigma_mm: Gaussian point-spread sd in-plane, mm (blur; acquired resolution).
        ghost_probability: chance that a case has a respiratory ghost.
        ghost_amplitude: (low, high) ghost intensity relative to the image.
        texture: sd of the smooth multiplicative tissue texture (flow, coil, trabeculation).
        curve: vendor intensity curve ``"linear"``, ``"gamma"``, ``"log"`` or ``"sigmoid"``.
        curve_param: gamma exponent, log gain or sigmoid slope.
        output_max: (low, high) value the image's 99.5th percentile is mapped to.
        value_limit: largest storable value (4095 for 12-bit, 255 for 8-bit).
        storage_dtype: dtype written to disk (``"int16"``, ``"uint8"``, ``"float32"``).
    """

    number: int
    paper_analogue: str
    vendor: str
    field_strengths_t: tuple[float, ...]
    in_plane_spacing_mm: tuple[float, float]
    slice_thickness_mm: tuple[float, ...]
    num_slices: tuple[int, int]
    fov_mm: tuple[float, float]
    max_matrix: int
    phase_fov_fraction: tuple[float, float]
    direction: str
    imaging_time_min: tuple[float, float]
    ti_error: tuple[float, float]
    noise: float
    bias_strength: float
    psf_sigma_mm: float
    ghost_probability: float
    ghost_amplitude: tuple[float, float]
    texture: float
    curve: str
    curve_param: float
    output_max: tuple[float, float]
    value_limit: float
    storage_dtype: str
    slice_gap_mm: tuple[float, float] = (0.0, 0.0)

    @property
    def name(self) -> str:
        """Dataset folder name, ``center<number>``."""
        return f"center{self.number}"

    @property
    def field_strength(self) -> str:
        """Field strength(s) as written to dataset.json, e.g. ``"1.5T/3T"``."""
        return "/".join(f"{f:g}T" for f in self.field_strengths_t)


CENTERS: dict[int, CenterProfile] = {
    # EMIDEC, University Hospital Dijon: Siemens Aera 1.5T / Skyra 3T, thick slices, well nulled,
    # 12-bit magnitude images that rarely use the whole 0..4095 range.
    1: CenterProfile(
        number=1, paper_analogue="EMIDEC (University Hospital Dijon, France)", vendor="Siemens",
        field_strengths_t=(1.5, 3.0), in_plane_spacing_mm=(1.37, 1.88),
        slice_thickness_mm=(8.0, 9.0, 10.0, 11.0, 12.0, 13.0), num_slices=(4, 10), fov_mm=(280.0, 360.0),
        max_matrix=256, phase_fov_fraction=(0.75, 1.0), direction="oblique", imaging_time_min=(9.0, 11.0),
        ti_error=(0.02, 0.03), noise=0.035, bias_strength=0.5, psf_sigma_mm=0.9, ghost_probability=0.1,
        ghost_amplitude=(0.03, 0.06), texture=0.05, curve="linear", curve_param=1.0,
        output_max=(900.0, 2600.0), value_limit=4095.0, storage_dtype="int16",
    ),
    # MSCMR / MyoPS 2020, Shanghai Renji: Philips 1.5T, 0.73-0.76 mm (interpolated, hence blurry), a few
    # 5 mm slices spread over the ventricle (12-23 mm apart), TI chosen long (grey myocardium: median
    # myocardium/blood ratio ~0.5 as in the real myops_lge scans), strong surface-coil shading (blood
    # well below the image's brightest tissue, as in myops_lge), 8-bit values. Moved towards myops_lge;
    # docs/synthetic_data.md, "Phantom against real LGE", has the before/after numbers.
    2: CenterProfile(
        number=2, paper_analogue="MSCMR / MyoPS 2020 (Shanghai Renji Hospital, China)", vendor="Philips",
        field_strengths_t=(1.5,), in_plane_spacing_mm=(0.73, 0.76), slice_thickness_mm=(5.0,),
        num_slices=(2, 6), fov_mm=(300.0, 380.0), max_matrix=512, phase_fov_fraction=(0.85, 1.0),
        direction="identity", imaging_time_min=(15.0, 20.0), ti_error=(0.3, 0.08), noise=0.05,
        bias_strength=2.5, psf_sigma_mm=1.5, ghost_probability=0.2, ghost_amplitude=(0.03, 0.08),
        texture=0.08, curve="gamma", curve_param=0.7, output_max=(230.0, 255.0), value_limit=255.0,
        storage_dtype="uint8", slice_gap_mm=(7.0, 18.0),
    ),
    # VH, Vall d'Hebron: GE 1.5T, 10 mm slices, TI slightly long, vendor intensity correction
    # (weak shading, log-like curve), frequent respiratory ghosts, values 0..1000.
    3: CenterProfile(
        number=3, paper_analogue="VH (Vall d'Hebron Hospital, Spain)", vendor="GE",
        field_strengths_t=(1.5,), in_plane_spacing_mm=(1.48, 1.68), slice_thickness_mm=(10.0,),
        num_slices=(8, 15), fov_mm=(300.0, 360.0), max_matrix=256, phase_fov_fraction=(0.8, 1.0),
        direction="oblique", imaging_time_min=(9.0, 11.0), ti_error=(0.07, 0.04), noise=0.04,
        bias_strength=0.25, psf_sigma_mm=1.1, ghost_probability=0.5, ghost_amplitude=(0.05, 0.12),
        texture=0.06, curve="log", curve_param=4.0, output_max=(700.0, 1000.0), value_limit=1000.0,
        storage_dtype="int16",
    ),
    # STPAU, Sant Pau: Philips 1.5T, 5 mm slices, imaged early (7-10 min: bright blood), TI a
    # little short, low noise, floating-point values after Philips rescaling, sigmoid-like curve.
    4: CenterProfile(
        number=4, paper_analogue="STPAU (Sant Pau Hospital, Spain)", vendor="Philips",
        field_strengths_t=(1.5,), in_plane_spacing_mm=(1.18, 1.18), slice_thickness_mm=(5.0,),
        num_slices=(18, 24), fov_mm=(300.0, 360.0), max_matrix=320, phase_fov_fraction=(0.8, 1.0),
        direction="flipped", imaging_time_min=(7.0, 10.0), ti_error=(-0.04, 0.03), noise=0.025,
        bias_strength=0.6, psf_sigma_mm=0.8, ghost_probability=0.15, ghost_amplitude=(0.02, 0.05),
        texture=0.05, curve="sigmoid", curve_param=5.0, output_max=(0.6, 2.5), value_limit=1.0e6,
        storage_dtype="float32",
    ),
}


def get_profile(center: int | str) -> CenterProfile:
    """Return the profile of ``center``: 1..4, ``"1"``, ``"center1"`` or ``"c1"``.

    Raises ``ValueError`` naming the accepted values for anything else.

    Example:
        >>> profile = get_profile("center2")
        >>> profile.number, profile.vendor, get_profile(2) is profile
        (2, 'Philips', True)
    """
    text = str(center).strip().lower()
    for prefix in ("center", "c"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    if text.isdigit() and int(text) in CENTERS:
        return CENTERS[int(text)]
    raise ValueError(f"unknown center {center!r}; expected one of {sorted(CENTERS)} (or 'center1'..'center4')")
