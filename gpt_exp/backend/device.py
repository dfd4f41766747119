"""The device group: choose CPU / GPU / Ascend before the first kernel runs."""
from __future__ import annotations

import mindspore
from omegaconf import DictConfig

from gpt_exp.errors import ConfigError

TARGETS = ("CPU", "GPU", "Ascend")


def is_available(target: str) -> bool:
    import mindspore.hal

    try:
        return bool(mindspore.hal.is_available(target))
    except Exception:  # a backend plugin that fails to load means the device is not usable
        return False


def resolve_target(device: DictConfig) -> str:
    """`auto` becomes the best device present; an explicit one must be present."""
    target = str(device.target)
    if target.lower() == "auto":
        return next(t for t in ("Ascend", "GPU", "CPU") if t == "CPU" or is_available(t))
    canonical = {t.lower(): t for t in TARGETS}.get(target.lower())
    if canonical is None:
        raise ConfigError(f"device.target={target!r}: use one of {', '.join(TARGETS)} or auto")
    if not is_available(canonical):
        raise ConfigError(
            f"device={device.get('name', target)}: this machine has no usable {canonical} "
            f"(mindspore.hal.is_available({canonical!r}) is False; MindSpore {mindspore.__version__} "
            f"was installed for {_installed_backends()}). Fix: device=cpu, or device=auto to use what is "
            f"here; on an {canonical} machine install the matching MindSpore package.")
    return canonical


def _installed_backends() -> str:
    found = [t for t in TARGETS if is_available(t)]
    return ", ".join(found) or "no device"


def configure(device: DictConfig, target: str) -> None:
    """Must run before any kernel: MindSpore refuses set_device afterwards."""
    mindspore.set_device(target, int(device.device_id))
    mindspore.set_context(mode=mindspore.PYNATIVE_MODE)  # graph mode is per function, via mindspore.jit
    if device.get("num_threads"):
        mindspore.set_context(runtime_num_threads=int(device.num_threads))
