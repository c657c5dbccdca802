"""The `${stilts.*:}` resolvers the configs use, registered when this module is imported (the CLIs,
`stilts.prepare` and tests import it before composing a config)."""

from __future__ import annotations

import os
import sys

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from stilts.errors import StiltsError
from stilts.store.identity import model_tag, run_key
from stilts.sweep import slurm_gpus, slurm_tasks, sweep_id
from stilts.tasks.common.sources import SAMPLES_ROOT


def _job_run_key(*, _root_: DictConfig) -> str:
    """`${stilts.run_key:}`: the run folder's suffix, from the job's config with its intermediate
    stages expanded (so `tasks: [squad, mnli]` and its spelled-out form share a folder). A config
    that does not expand gets the key of its raw form: the job then fails with the config error."""
    from stilts.mixtures import expanded_config

    try:
        return run_key(expanded_config(_root_))
    except (StiltsError, OmegaConfBaseException):
        try:
            return run_key(_root_)
        except OmegaConfBaseException:  # e.g. a mandatory value not given: the job reports it
            return "unresolved"


# Device nodes of a GPU driver (NVIDIA's, or ROCm's, which torch.cuda also serves) on Linux.
GPU_DRIVER_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/kfd")


def gpu_driver_absent() -> bool:
    """True where no CUDA/ROCm device can exist (Linux without a GPU driver): then no need to
    import torch to know it, which keeps a skipped run as cheap as `import torch` or cheaper."""
    return sys.platform.startswith("linux") and not any(os.path.exists(path) for path in GPU_DRIVER_FILES)


def default_precision(accelerator: str) -> str:
    """`trainer=default`'s precision (`${stilts.precision:...}`): bf16 mixed precision when the
    accelerator is (or auto-detects) a CUDA GPU that supports bf16, else full fp32. Resolved when a
    job runs; torch is asked only where a GPU driver exists."""
    if accelerator not in ("auto", "gpu", "cuda") or gpu_driver_absent():
        return "32-true"
    import torch

    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("stilts.chain", lambda node: "+".join(node) or "none", replace=True)
    OmegaConf.register_new_resolver("stilts.samples", lambda: str(SAMPLES_ROOT), replace=True)
    OmegaConf.register_new_resolver("stilts.sweep_id", sweep_id, replace=True)
    OmegaConf.register_new_resolver("stilts.model_tag", model_tag, replace=True)
    OmegaConf.register_new_resolver("stilts.run_key", _job_run_key, replace=True)
    OmegaConf.register_new_resolver("stilts.precision", default_precision, replace=True)
    OmegaConf.register_new_resolver("stilts.slurm_gpus", slurm_gpus, replace=True)
    OmegaConf.register_new_resolver("stilts.slurm_tasks", slurm_tasks, replace=True)


register_resolvers()
