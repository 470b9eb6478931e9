"""The bottom layer: errors, atomic file writes, the run configuration and console output.

Nothing here imports torch, transformers or any other part of domainfit.
"""

from .version import __version__

__all__ = ["__version__"]
