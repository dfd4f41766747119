"""The model/dataset hub, for users who have one: a fast reachability check and MindNLP's import, fenced in.

Without a network every hub call would retry for minutes; a user who typed a hub name gets a
clear error within seconds instead, naming the config key and the offline alternative.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
from urllib.parse import urlparse

from gpt_exp.errors import ConfigError


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    from huggingface_hub import constants

    url = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def require_hub(name: str, config_key: str, fix: str | None = None) -> None:
    if not hub_reachable():
        fix = fix or (f"give {config_key} a local folder (HF format: config.json + model.safetensors, "
                      f"or a gpt_exp run directory)")
        raise ConfigError(
            f"{config_key}={name!r} is a hub name, but no hub is reachable from this machine "
            f"(no network, or HF_HUB_OFFLINE is set). Fix: {fix}, or run where the hub "
            f"(or a mirror in HF_ENDPOINT) is reachable.")


@contextlib.contextmanager
def mindnlp_imported():
    """Import MindNLP 0.4.1 with the shims it needs on current MindSpore, and undo its side effects.

    On import MindNLP sets HF_ENDPOINT to a mirror and deletes RANK_TABLE_FILE (which Ascend
    multi-card launches rely on), and writes `.mindnlp/` into the working directory.
    """
    saved_env = dict(os.environ)
    try:
        if "mindnlp" not in sys.modules:
            import mindspore.common._stub_tensor  # noqa: F401  (mindnlp 0.4.1 expects it loaded)
            import mindnlp  # noqa: F401
            from mindnlp.core.ops import creation

            creation.has_empty = False  # else building a model fails with "Two args are needed by RunOp"
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
