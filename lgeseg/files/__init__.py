"""Image files: the only readers and writers of image bytes.

``io`` (NIfTI, MHA, NRRD... <-> ``(array (z, y, x), CaseGeometry)``, with the checks ITK skips),
``dicom`` (DICOM series as cases) and ``dicom_seg`` (DICOM SEG output). They know nothing of datasets.
"""
