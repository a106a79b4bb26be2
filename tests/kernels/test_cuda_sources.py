"""Every CUDA source compiles with nvcc, also on machines without a GPU or a CUDA build of torch: the .cu files
are framework-free (raw pointers, params structs, a cudaStream_t), built here without torch."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cuda_kernels_compile_without_torch(tmp_path):
    sources = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
    assert sources, "no CUDA sources found"
    archs = os.environ.get("TOKASAURUS_CHECK_CUDA_ARCHS", "90a")
    configure = [
        "cmake",
        "-S",
        str(ROOT),
        "-B",
        str(tmp_path),
        "-G",
        "Ninja",
        "-DTOKASAURUS_CUDA_KERNELS_ONLY=ON",
        f"-DTOKASAURUS_CUDA_ARCHS={archs}",
    ]
    subprocess.run(configure, check=True, capture_output=True, text=True)
    build = subprocess.run(["cmake", "--build", str(tmp_path), "-j", "2"], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    objects = list(tmp_path.rglob("*.cu.o"))
    assert len(objects) == len(sources), f"compiled {len(objects)} of {len(sources)} CUDA sources"
