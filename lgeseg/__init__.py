"""lgeseg: self-configuring LV segmentation for LGE cardiac MRI that generalizes across centers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lgeseg")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0"

__all__ = ["__version__"]
