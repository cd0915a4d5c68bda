"""Foundation: what every layer above may use, with no lgeseg import above it.

``atomic`` (atomic file writes), ``records`` (the JSON records the stages exchange: ``Plan``,
``Fingerprint``, ``CaseGeometry``, ...), ``checks`` (their range checks), ``errors`` (lgeseg's
exceptions) and ``device`` (the one torch device rule). Import the module you need
(``from lgeseg.core.records import load_plan``); this package re-exports nothing, so importing one
of them loads no other.
"""
