"""Builds the extension library `tokasaurus_ext/_C.so` with CMake + Ninja against the torch being installed.

Environment knobs:
  MAX_JOBS                parallel compile jobs (default 2)
  TOKASAURUS_CUDA         "0" forces a CPU-only build, "1" requires CUDA; default: CUDA when torch and nvcc have it
  TORCH_CUDA_ARCH_LIST    CUDA architectures, e.g. "8.0 9.0a" (default "8.0 9.0a")
  TOKASAURUS_CPU_ARCH     -march value for the CPU kernels (default "native"; "" for the compiler default)
"""

import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def cuda_archs() -> str:
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "8.0 9.0a").replace(";", " ").split()
    return ";".join(a.replace(".", "").replace("+PTX", "") for a in archs)


def want_cuda(torch_module) -> bool:
    setting = os.environ.get("TOKASAURUS_CUDA", "")
    available = torch_module.version.cuda is not None and shutil.which("nvcc") is not None
    if setting == "1" and not available:
        raise RuntimeError("TOKASAURUS_CUDA=1 but torch has no CUDA build or nvcc is not on PATH")
    return available and setting != "0"


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import torch

        with_cuda = want_cuda(torch)
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build_dir),
            "-G",
            "Ninja",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DTOKASAURUS_WITH_CUDA={'ON' if with_cuda else 'OFF'}",
            f"-DTOKASAURUS_CUDA_ARCHS={cuda_archs()}",
            f"-DTOKASAURUS_CPU_ARCH={os.environ.get('TOKASAURUS_CPU_ARCH', 'native')}",
            f"-DTOKASAURUS_LIBRARY_SUFFIX={sysconfig.get_config_var('EXT_SUFFIX')}",
        ]
        subprocess.run(configure, check=True)
        jobs = os.environ.get("MAX_JOBS", "2")
        subprocess.run(["cmake", "--build", str(build_dir), "-j", jobs], check=True)
        info = json.dumps({"torch_version": torch.__version__, "cuda": with_cuda})
        # Also beside the sources, for in-place builds (setuptools copies only the library there).
        for package_dir in {out_dir, ROOT / "tokasaurus_ext"}:
            (package_dir / "_build_info.json").write_text(info)


setup(
    ext_modules=[Extension("tokasaurus_ext._C", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)
