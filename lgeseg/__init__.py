"""lgeseg: self-configuring LV segmentation for LGE cardiac MRI that generalizes across centers."""

from importlib.metadata import PackageNotFoundError, version

from lgeseg import _moved

try:
    __version__ = version("lgeseg")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0"

__all__ = ["__version__", "segment"]

# The module paths of lgeseg 0.1 (lgeseg.records, lgeseg.io, ...) import their new modules, with a
# DeprecationWarning, for one more release.
_moved.install()


def __getattr__(name: str):  # noqa: ANN202 - module-level lazy attribute (PEP 562)
    """``lgeseg.segment`` loads torch and the models only when it is first used."""
    if name == "segment":
        from lgeseg.inference.segment import segment  # deferred: `import lgeseg` stays light (no torch)

        return segment
    raise AttributeError(f"module 'lgeseg' has no attribute {name!r}")
