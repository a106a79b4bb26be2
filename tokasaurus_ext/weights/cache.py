"""Where converted and downloaded models are kept."""

import os
from pathlib import Path


def cache_root() -> Path:
    """$TOKASAURUS_CACHE, default ~/.cache/tokasaurus_ext."""
    return Path(os.environ.get("TOKASAURUS_CACHE", Path.home() / ".cache" / "tokasaurus_ext"))
