"""Loads the compiled op library (`_C.so`) into torch.ops.tokasaurus_ext, refusing a torch it was not built for."""

import json
from pathlib import Path

import torch

_HERE = Path(__file__).resolve().parent


def _load() -> dict:
    candidates = sorted(_HERE.glob("_C*.so"))
    library = candidates[0] if candidates else _HERE / "_C.so"
    if not candidates:
        raise ImportError(
            f"tokasaurus_ext's compiled library is missing ({library}); install the package with `pip install .` "
            "or build it in place with `python setup.py build_ext --inplace`"
        )
    info_file = _HERE / "_build_info.json"
    info = json.loads(info_file.read_text()) if info_file.exists() else {"torch_version": None, "cuda": False}
    built = info["torch_version"]
    if built is not None and built.split("+")[0] != torch.__version__.split("+")[0]:
        raise ImportError(
            f"tokasaurus_ext was compiled against torch {built} but torch {torch.__version__} is installed; "
            "rebuild against the installed torch with `pip install --no-build-isolation .`"
        )
    torch.ops.load_library(str(library))
    return info


_INFO = _load()


def built_with_cuda() -> bool:
    """Whether the CUDA kernels were compiled into this build."""
    return bool(_INFO["cuda"])
