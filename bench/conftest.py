"""pytest-benchmark fixtures: device selection and a timer that synchronizes CUDA work."""

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="device to benchmark on: cpu or cuda")
    parser.addoption("--rounds", type=int, default=5, help="timed rounds per case")


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    dev = request.config.getoption("--device")
    if dev == "cuda" and not torch.cuda.is_available():
        pytest.fail("--device cuda given but no CUDA device is available")
    return dev


@pytest.fixture
def run(benchmark, request: pytest.FixtureRequest, device: str):
    """run(fn, **extra_info): times fn (synchronizing CUDA around each call) and records extra_info."""
    rounds = request.config.getoption("--rounds")

    def timed(fn, **info):
        def call():
            fn()
            if device == "cuda":
                torch.cuda.synchronize()

        call()  # warm-up: lazy init, autotuning, caches
        benchmark.extra_info.update(info, device=device)
        benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=1)

    return timed
