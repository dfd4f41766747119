"""Runs many bad invocations of the CLI's task function in one process, for tests/test_bad_input.py.

    python tests/bad_input_driver.py CASES.json  ->  one JSON line per case on stdout

Each case is {"id", "overrides"}. A case goes the way `python -m gpt_exp <overrides>` goes
after Hydra has parsed the command line: Hydra composes the config (a composition error goes through
the CLI's own reporting, `gpt_exp.cli.report_composition_errors`), then the CLI's task function
(`gpt_exp.cli.hydra_entry`, undecorated) runs with Hydra's config installed. One process saves the
interpreter start and the MindSpore import of every case; tests/test_bad_input.py runs a few real
`python -m gpt_exp` subprocesses besides, for the parts only a process shows (Hydra's argv handling, exit code).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("GLOG_v", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
sys.path.insert(0, str(ROOT))

import mindspore  # noqa: E402

mindspore.set_device("CPU")  # as tests/conftest.py: before any kernel, once per process

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import open_dict  # noqa: E402

import gpt_exp.run  # noqa: E402,F401  (imported once here, as the CLI imports it once per process)
from gpt_exp import cli  # noqa: E402


class NotRefused(Exception):
    """A bad invocation that got as far as building the model: the check that should have refused it is missing."""


def model_build_reached(*args, **kwargs):
    raise NotRefused("reached the model build: this invocation was not refused")


gpt_exp.run.build_model = model_build_reached  # a case that is not refused must not go on and train


def run_case(overrides: list[str]) -> int:
    """The CLI's path for one invocation; returns its exit code (0 when the run would go on and train)."""
    def composed():
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)

    try:
        cfg = cli.report_composition_errors(lambda func: func(), overrides)(composed)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        cli.hydra_entry.__wrapped__(cfg)
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


def main(cases_file: str) -> None:
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):  # once: Hydra's search path
        for case in json.loads(Path(cases_file).read_text()):
            run_and_print(case)


def run_and_print(case: dict) -> None:
    stderr = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(stderr):
            code = run_case(case["overrides"])
    except BaseException:  # what a user would see as a traceback
        code = 1
        stderr.write(traceback.format_exc())
    seconds = time.perf_counter() - start
    print(json.dumps({"id": case["id"], "exit": code, "seconds": seconds, "stderr": stderr.getvalue()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
