"""Which series of a DICOM study to take: the short-axis LGE stacks, found by their tags.

A scanner's study folder holds localizers, cines, T1/T2 maps, a TI scout and the LGE series, often
in several views. Without ``--series``, ``lgeseg_predict`` and ``lgeseg_convert dicom`` keep the
series that are LGE (an inversion time, or LGE words in the SeriesDescription, ImageType or
SequenceName: LGE, late, delayed, PSIR, MAG IR, viability, ...) and a short-axis stack (not named a
long-axis view, and more than one slice when a multi-slice LGE stack exists), and skip every other
series with one line saying why. When no series looks like LGE, the stacks that are not localizers,
cines or maps are taken, with a warning; when none is left, the error lists every series and its kind.

``classify_series`` works on the tags ``lgeseg.dicom.find_series`` reads from each series' first
file, so choosing reads no pixel data. (Importable from ``lgeseg.files.dicom_study`` too, where
it lived before the converter needed it.)
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence

from lgeseg.files.dicom import DicomSeries, is_multiframe

logger = logging.getLogger(__name__)

#: Words (of SeriesDescription, ImageType, SequenceName; lower case, split at non-letters) per kind.
LGE_WORDS = frozenset({"lge", "late", "delayed", "de", "mde", "psir", "magir", "mag", "ir", "viability", "viab",
                       "enhancement", "hyperenhancement", "scar", "tir", "irtfl", "psirtfl", "lategd"})
CINE_WORDS = frozenset({"cine", "ssfp", "bssfp", "trufi", "fiesta", "btfe", "sfp", "retro", "tf2d", "realtime"})
LOCALIZER_WORDS = frozenset({"localizer", "localiser", "loc", "scout", "survey", "pilot", "tripilot", "locator",
                             "haste", "3plane", "localizers"})
MAP_WORDS = frozenset({"molli", "shmolli", "sasha", "t1map", "t2map", "t2", "t2star", "mapping", "map", "perfusion",
                       "perf", "flow", "pc", "vel", "tse", "stir", "dark", "blood", "t1", "ecv", "native"})
LONG_AXIS_WORDS = frozenset({"2ch", "3ch", "4ch", "2cv", "3cv", "4cv", "lax", "la", "long", "vla", "hla", "lvot",
                             "rvot", "ch2", "ch3", "ch4", "2chamber", "4chamber", "3chamber"})
SHORT_AXIS_WORDS = frozenset({"sa", "sax", "short", "sht", "shortaxis", "stack"})


@dataclasses.dataclass(frozen=True)
class SeriesKind:
    """What a series is: ``kind`` (``lge``, ``cine``, ``localizer``, ``ti_scout``, ``map``, ``long_axis``,
    ``unknown``) and the evidence, in words (``inversion time 300 ms``, ``description: cine``)."""

    kind: str
    reason: str


def _words(*texts: str) -> set[str]:
    words: set[str] = set()
    for text in texts:
        lowered = text.lower()
        words |= {w for w in re.split(r"[^a-z0-9]+", lowered) if w}
        words |= {w for w in re.split(r"[^a-z]+", lowered) if w}  # "LGE3D" -> lge, "2CH" stays 2ch above
    return words


def _number(text: str) -> float:
    try:
        return float(text.split("\\")[0])
    except ValueError:
        return 0.0


def classify_series(series: DicomSeries) -> SeriesKind:
    """The kind of ``series``, from its description, image type, sequence name and timing tags.

    Example:
        >>> def series(description, **tags):
        ...     return DicomSeries("x", "1.2", description, "5", "MR", (), tags)
        >>> classify_series(series("SAX_LGE_PSIR")).kind, classify_series(series("sa_cine", cardiac_images="25")).kind
        ('lge', 'cine')
        >>> classify_series(series("Localizer", image_type="ORIGINAL\\\\PRIMARY\\\\LOCALIZER")).kind
        'localizer'
        >>> classify_series(series("SAX stack", inversion_time="310")).reason
        'inversion time 310 ms'
        >>> classify_series(series("LGE 4CH")).kind, classify_series(series("MOLLI T1", inversion_time="100")).kind
        ('long_axis', 'map')
    """
    tags = series.metadata
    description, image_type = series.description, tags.get("image_type", "")
    words = _words(description, image_type.replace("\\", " "), tags.get("sequence_name", ""))
    said = sorted(words & (LGE_WORDS | CINE_WORDS | LOCALIZER_WORDS | MAP_WORDS | LONG_AXIS_WORDS))
    evidence = f"description/type: {' '.join(said)}" if said else f"description: {description or '-'}"
    if "localizer" in _words(image_type) or (words & LOCALIZER_WORDS and not words & {"ti", "look", "looklocker"}):
        return SeriesKind("localizer", evidence)
    if ("ti" in words and words & {"scout", "look", "looklocker", "lookup"}) or "looklocker" in words:
        return SeriesKind("ti_scout", evidence)
    if words & MAP_WORDS and not words & (LGE_WORDS - {"ir", "mag"}):
        return SeriesKind("map", evidence)
    inversion = _number(tags.get("inversion_time", ""))
    lge = words & LGE_WORDS or inversion > 0
    if not lge and (words & CINE_WORDS or _number(tags.get("cardiac_images", "")) > 1):
        phases = tags.get("cardiac_images", "")
        return SeriesKind("cine", evidence if words & CINE_WORDS else f"{phases} cardiac phases")
    if not lge:
        return SeriesKind("unknown", evidence)
    reason = evidence if words & LGE_WORDS else f"inversion time {inversion:g} ms"
    if words & LONG_AXIS_WORDS and not words & SHORT_AXIS_WORDS:
        return SeriesKind("long_axis", reason)
    return SeriesKind("lge", reason)


def _slices(series: DicomSeries) -> int:
    frames = series.metadata.get("frames", "")
    return int(frames) if is_multiframe(series) and frames.isdigit() else len(series.files)


def pick_series(found: Sequence[DicomSeries], all_option: str = "") -> list[DicomSeries]:
    """The series of a study to take when the user named none (``--series``): its short-axis LGE stacks.

    Every other series is skipped with one log line saying what it is. Single-slice LGE series
    (long-axis views, exported one per series) are skipped when a multi-slice LGE stack exists.
    Without any LGE series, the ``unknown`` stacks are taken with a warning (a study of one series
    of unknown kind is taken as before). Raises ``ValueError`` listing every series and its kind
    when nothing is left, with the ``--series`` option that picks one anyway and ``all_option``, the
    caller's option that takes every series (``"--all-series"`` for ``lgeseg_convert dicom``), if any.

    Example:
        >>> def series(number, description, files=10, **tags):
        ...     return DicomSeries(f"s{number}", f"1.2.{number}", description, str(number), "MR",
        ...                        tuple(f"{number}_{k}.dcm" for k in range(files)), tags)
        >>> study = [series(1, "localizer", 3), series(5, "cine_sax", 250, cardiac_images="25"),
        ...          series(12, "SAX LGE PSIR"), series(13, "LGE 4CH", 1)]
        >>> [s.case_id for s in pick_series(study)]  # logs one line per skipped series
        ['s12']
    """
    kinds = {s.uid: classify_series(s) for s in found}
    lge = [s for s in found if kinds[s.uid].kind == "lge"]
    if any(_slices(s) > 1 for s in lge):
        for s in [s for s in lge if _slices(s) == 1]:
            kinds[s.uid] = SeriesKind("long_axis", f"{kinds[s.uid].reason}; one slice (a long-axis view?)")
        lge = [s for s in lge if _slices(s) > 1]
    chosen = lge or [s for s in found if kinds[s.uid].kind == "unknown"]
    if not chosen:
        listing = "; ".join(f"{s.number or '-'} {s.description or '-'} ({kinds[s.uid].kind})" for s in found)
        every = f", or take every series with {all_option}" if all_option else ""
        raise ValueError(f"no short-axis LGE series found among {len(found)} series ({listing}); pick the series to "
                         f"segment with --series NUMBER or --series '*PATTERN*' (lgeseg_predict --list-series){every}")
    if not lge:
        logger.warning("no series is recognisably LGE (no inversion time, no LGE/PSIR/late/delayed in its "
                       "description): taking %s; name the LGE stack with --series if it is another",
                       ", ".join(f"{s.number or '-'} {s.description or '-'}" for s in chosen))
    for s in found:
        if s not in chosen:
            logger.info("skipped series %s %r: %s (%s, %d image(s)); --series %s takes it anyway",
                        s.number or "-", s.description or s.uid, kinds[s.uid].kind.replace("_", " "),
                        kinds[s.uid].reason, _slices(s), s.number or s.uid)
    return list(chosen)
