"""LGE contrast and the scanner: tissue signal from T1, then blur, shading, ghosts, noise, vendor curve.

Signal model: a magnitude inversion-recovery image, ``S = PD * (1 - 2 exp(-TI / T1))``, with the
inversion time TI chosen to null the subject's healthy myocardium (``TI = T1_myo ln 2``) plus the
center's TI error. Blood, scar and fat have a shorter post-contrast T1 than healthy myocardium and
come out bright; a TI error leaves the myocardium grey. The signed signal is averaged through
the slice and blurred in-plane before the magnitude is taken, so partial volume behaves as in a
real magnitude IR image (dark rims where signals of opposite sign meet).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from lgeseg.synth import anatomy as a
from lgeseg.synth.centers import CenterProfile


@dataclasses.dataclass(frozen=True)
class Acquisition:
    """The sampled acquisition of one case.

    Attributes:
        field_strength_t: tesla.
        spacing: (slice spacing, row spacing, column spacing), mm, (z, y, x).
        shape: voxels, (z, y, x).
        imaging_time_min: minutes after contrast injection.
        ti_error: relative inversion-time error.
        ghost_amplitude: 0 for no ghost, else ghost intensity relative to the image.
        ghost_shift: ghost offset along the phase-encode axis (y), voxels.
        output_max: value the 99.5th percentile maps to.
        slice_thickness: mm; the slice spacing minus the gap between slices.
    """

    field_strength_t: float
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    imaging_time_min: float
    ti_error: float
    ghost_amplitude: float
    ghost_shift: int
    output_max: float
    slice_thickness: float


def tissue_signals(acq: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """Signed IR signal (float32, one value per tissue class of ``anatomy.TISSUE_NAMES``).

    T1 (ms) after contrast grows with the imaging time; each subject's T1 varies by a few percent.
    Returns signals relative to a fully recovered PD = 1 tissue.

    Example:
        >>> from lgeseg.synth.centers import get_profile
        >>> from lgeseg.synth.phantom import case_rng, sample_acquisition
        >>> acquisition = sample_acquisition(get_profile(1), case_rng(0, 1, 0), in_plane_size=32)
        >>> signals = tissue_signals(acquisition, np.random.default_rng(0))
        >>> signals.shape, bool(abs(signals[a.LV_MYOCARDIUM]) < 0.05)  # one per tissue class; myocardium nulled
        ((13,), True)
        >>> bool(signals[a.SCAR] > signals[a.LV_BLOOD] > signals[a.LV_MYOCARDIUM])  # bright scar, dark myocardium
        True
    """
    t = acq.imaging_time_min
    t1_blood, t1_myo, t1_scar = 220.0 + 6.0 * t, 400.0 + 5.0 * t, 200.0 + 3.0 * t
    if acq.field_strength_t > 2.0:  # longer T1 at 3T
        t1_blood, t1_myo, t1_scar = 1.1 * t1_blood, 1.1 * t1_myo, 1.1 * t1_scar
    jitter = rng.uniform(0.94, 1.06, size=4)
    t1_blood, t1_myo, t1_scar = t1_blood * jitter[0], t1_myo * jitter[1], t1_scar * jitter[2]
    fat_t1 = 260.0 if acq.field_strength_t < 2.0 else 370.0
    table = {  # tissue: (proton density, T1 ms)
        a.AIR: (0.0, 1000.0), a.LUNG: (0.12, 700.0), a.MUSCLE: (0.45, 650.0 + 5.0 * t), a.FAT: (0.9, fat_t1),
        a.LIVER: (0.8, (300.0 + 8.0 * t) * jitter[3]), a.BONE: (0.7, 330.0), a.BLOOD: (0.95, t1_blood),
        a.MYOCARDIUM: (0.8, t1_myo), a.LV_BLOOD: (0.95, t1_blood), a.LV_MYOCARDIUM: (0.8, t1_myo),
        a.PAPILLARY: (0.8, t1_myo), a.SCAR: (0.85, t1_scar), a.MVO: (0.85, 1.08 * t1_myo),
    }
    ti = t1_myo * np.log(2.0) * (1.0 + acq.ti_error)
    signals = np.zeros(len(a.TISSUE_NAMES), dtype=np.float32)
    for tissue, (pd, t1) in table.items():
        signals[tissue] = pd * (1.0 - 2.0 * np.exp(-ti / t1))
    return signals


def _coords(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz, ny, nx = shape
    return (np.linspace(-1.0, 1.0, nz)[:, None, None], np.linspace(-1.0, 1.0, ny)[None, :, None],
            np.linspace(-1.0, 1.0, nx)[None, None, :])


def texture_field(shape: tuple[int, int, int], spacing: tuple[float, float, float], sd: float,
                  rng: np.random.Generator, waves: int = 8) -> np.ndarray:
    """Smooth multiplicative texture ``1 + sd * f``, float32 (z, y, x).

    ``f`` is a sum of ``waves`` in-plane plane waves (wavelength 12-40 mm, random direction and
    per-slice phase), unit variance; built from separable 1-D factors for speed.

    Example:
        >>> texture = texture_field((2, 32, 32), (8.0, 1.5, 1.5), sd=0.1, rng=np.random.default_rng(0))
        >>> texture.shape, texture.dtype, round(float(texture.mean()), 2)  # around 1
        ((2, 32, 32), dtype('float32'), 0.99)
    """
    nz, ny, nx = shape
    y = (np.arange(ny) * spacing[1])[None, :, None]
    x = (np.arange(nx) * spacing[2])[None, None, :]
    field = np.zeros(shape, dtype=np.float32)
    for _ in range(waves):
        wavelength, angle = rng.uniform(12.0, 40.0), rng.uniform(0.0, np.pi)
        phase = rng.uniform(0.0, 2.0 * np.pi, size=(nz, 1, 1))
        kx, ky = 2.0 * np.pi / wavelength * np.cos(angle), 2.0 * np.pi / wavelength * np.sin(angle)
        # cos(kx x + ky y + p) = cos(kx x) cos(ky y + p) - sin(kx x) sin(ky y + p)
        field += (np.cos(kx * x) * np.cos(ky * y + phase)).astype(np.float32)
        field -= (np.sin(kx * x) * np.sin(ky * y + phase)).astype(np.float32)
    field *= np.float32(sd * np.sqrt(2.0 / waves))
    field += np.float32(1.0)
    return field


def bias_field(shape: tuple[int, int, int], strength: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth coil sensitivity: exp of a low-order polynomial plus an anterior surface-coil bump.

    Scaled to a peak-to-peak log amplitude of ``strength`` and a median of 1; float32 (z, y, x).

    Example:
        >>> field = bias_field((2, 32, 32), strength=0.5, rng=np.random.default_rng(0))
        >>> round(float(np.median(field)), 3), round(float(np.log(field.max() / field.min())), 3)
        (1.0, 0.5)
    """
    z, y, x = _coords(shape)
    c = rng.normal(0.0, 1.0, size=6)
    log_field = (c[0] * x + c[1] * y + 0.5 * c[2] * x * x + 0.5 * c[3] * y * y + 0.5 * c[4] * x * y + 0.3 * c[5] * z
                 + 1.5 * np.exp(-((y + 1.1) ** 2) / 0.5))
    log_field = np.broadcast_to(log_field, shape)
    span = float(log_field.max() - log_field.min()) or 1.0
    log_field = strength * (log_field - np.median(log_field)) / span
    return np.exp(log_field).astype(np.float32)


def vendor_curve(magnitude: np.ndarray, curve: str, param: float) -> np.ndarray:
    """Monotone vendor intensity curve on ``magnitude`` scaled so its 99.5th percentile is 1.

    Example:
        >>> curve = vendor_curve(np.linspace(0.0, 2.0, 50), "log", 4.0)
        >>> float(curve[0]), bool(np.all(np.diff(curve) > 0))  # 0 stays 0; monotone
        (0.0, True)
        >>> vendor_curve(np.ones(3), "cubic", 1.0)
        Traceback (most recent call last):
        ValueError: unknown vendor curve 'cubic'; expected linear, gamma, log or sigmoid
    """
    ref = float(np.percentile(magnitude.ravel()[::7], 99.5)) or 1.0  # a subsample is plenty
    x = np.maximum(magnitude / ref, 0.0)
    if curve == "linear":
        return x
    if curve == "gamma":
        return x**param
    if curve == "log":
        return np.log1p(param * x) / np.log1p(param)
    if curve == "sigmoid":
        lo, hi = 1.0 / (1.0 + np.exp(0.5 * param)), 1.0 / (1.0 + np.exp(-0.5 * param))
        return (1.0 / (1.0 + np.exp(-param * (x - 0.5))) - lo) / (hi - lo)
    raise ValueError(f"unknown vendor curve {curve!r}; expected linear, gamma, log or sigmoid")


def acquire(signal: np.ndarray, acq: Acquisition, profile: CenterProfile, blood_signal: float,
            rng: np.random.Generator) -> np.ndarray:
    """Turn the slice-averaged signed signal (z, y, x) into the stored image (float32, (z, y, x)).

    Applies texture, coil shading, in-plane blur (PSF), ghosting along the phase-encode axis (y),
    Rician noise (sd ``profile.noise * blood_signal``), the vendor curve and quantization to the
    storage dtype.

    Example:
        >>> from lgeseg.synth.centers import get_profile
        >>> from lgeseg.synth.phantom import case_rng, sample_acquisition
        >>> profile = get_profile(1)
        >>> acquisition = sample_acquisition(profile, case_rng(0, 1, 0), in_plane_size=32)
        >>> blood = float(tissue_signals(acquisition, np.random.default_rng(0))[a.LV_BLOOD])
        >>> signal = np.zeros(acquisition.shape, np.float32)
        >>> signal[:, 10:20, 10:20] = blood  # a bright square on a black background
        >>> image = acquire(signal, acquisition, profile, blood, np.random.default_rng(0))
        >>> image.shape, image.dtype, bool(image[:, 12:18, 12:18].mean() > image[:, :5, :5].mean())
        ((7, 32, 32), dtype('float32'), True)
    """
    image = signal * texture_field(acq.shape, acq.spacing, profile.texture, rng)
    image *= bias_field(acq.shape, profile.bias_strength, rng)
    sigma_px = (0.0, profile.psf_sigma_mm / acq.spacing[1], profile.psf_sigma_mm / acq.spacing[2])
    image = ndimage.gaussian_filter(image, sigma=sigma_px, mode="nearest")
    if acq.ghost_amplitude > 0.0:
        image = image + acq.ghost_amplitude * (np.roll(image, acq.ghost_shift, axis=1)
                                               + 0.5 * np.roll(image, -acq.ghost_shift, axis=1))
    sd = profile.noise * abs(blood_signal)
    real = image + np.float32(sd) * rng.standard_normal(size=image.shape, dtype=np.float32)
    imag = np.float32(sd) * rng.standard_normal(size=image.shape, dtype=np.float32)
    magnitude = np.sqrt(real * real + imag * imag)
    out = vendor_curve(magnitude, profile.curve, profile.curve_param) * acq.output_max
    out = np.clip(out, 0.0, profile.value_limit)
    if np.dtype(profile.storage_dtype).kind in "iu":
        out = np.round(out)
    else:  # floating-point vendors store 12-bit integers times a rescale slope
        step = acq.output_max / 4095.0
        out = np.round(out / step) * step
    return out.astype(np.float32)
