"""pytest plugin of ``benchmarks/gpu_check.sh``: the LLM tests train on the GPU.

    python -m pytest -p gpu_check_plugin tests/llm ...   (with benchmarks/ on PYTHONPATH)

The tests pin ``use_cpu: true`` so that they run anywhere; with a CUDA device this plugin turns it
off in every ``WINDConfig`` built in the pytest process (in-process trainers, ``wind train``
called through ``windalign.cli.main``), so they run on ``cuda:0``. Tests that start their own
processes (``test_resume``: exact resume on CPU) keep the CPU. Without CUDA it does nothing.
"""

from __future__ import annotations


def pytest_configure(config) -> None:
    import torch

    if not torch.cuda.is_available():
        return
    from windalign.llm.config import WINDConfig

    post_init = WINDConfig.__post_init__

    def on_gpu(self) -> None:
        self.use_cpu = False
        post_init(self)

    WINDConfig.__post_init__ = on_gpu


def pytest_report_header(config) -> str:
    import torch

    if torch.cuda.is_available():
        return f"gpu_check_plugin: use_cpu forced off; {torch.cuda.get_device_name(0)}"
    return "gpu_check_plugin: no CUDA device, tests run as written"
