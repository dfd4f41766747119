"""Shared test setup: one data cache for the whole session, quiet logs, config composition helpers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real data is fetched at first use into the tests' own cache and reused by every later test and session:
# never the user's ~/.cache/gpt_exp (or their GPT_EXP_CACHE), so what a user's runs left there (a partial
# download, an older build) can neither break nor help the suite. A fresh cache costs ~1-2 min of downloads
# and builds. GPT_EXP_TEST_CACHE moves it (CI: a cache folder of its own).
os.environ["GPT_EXP_CACHE"] = os.environ.get("GPT_EXP_TEST_CACHE") or str(Path.home() / ".cache" / "gpt_exp-tests")
os.environ.setdefault("GLOG_v", "3")
os.environ.setdefault("WANDB_SILENT", "true")
# tests must never wait on a hub: hub names fail fast, as they would offline
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# MindSpore accepts set_device only before its first kernel. A test that runs kernels directly (a model,
# a decoder) would make every later `gpt_exp.run.train` in the same process fail with "The runtime has
# been initialized"; choosing the CPU here, first, makes the runner's own set_device("CPU", 0) a no-op.
import mindspore  # noqa: E402

mindspore.set_device("CPU")

from gpt_exp import CONFIG_DIR  # noqa: E402  (other tests import it from here)

ROOT = Path(__file__).resolve().parent.parent

# A model small enough for a few dozen steps in seconds on 2 cores, and a corpus_bpe vocab to match.
TINY = [
    "model.n_layer=2", "model.n_embd=64", "model.n_head=2", "model.n_positions=128",
    "tokenizer.vocab_size=1024", "data.max_train_samples=6", "data.max_eval_samples=2",
    "task.max_seq_len=64", "trainer.batch_size=8", "optimizer.lr=3e-3", "scheduler.warmup_steps=5", "trainer.eval_batches=4", "trainer.log_interval=5",
    "logger.mode=disabled", "device=cpu",
]


@pytest.fixture(autouse=True)
def own_wandb_service_per_cli_run():
    """wandb.init in this process saves its wandb-core address in os.environ (WANDB_SERVICE), and every
    `python -m gpt_exp` a later test starts would join that one service. A SIGKILLed child's run then
    stays open in it, and its resume is refused with "run ID ... is in use" (stop 19's CI failure).
    Users' runs each start their own service; so must the tests'."""
    os.environ.pop("WANDB_SERVICE", None)
    yield
    os.environ.pop("WANDB_SERVICE", None)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return hydra_compose(config_name="train", overrides=overrides)


@pytest.fixture
def tiny_overrides(tmp_path) -> list[str]:
    return TINY + [f"paths.output_dir={tmp_path / 'run'}"]


@pytest.fixture(scope="session")
def shakespeare_excerpt(tmp_path_factory) -> list[str]:
    """Overrides that train on the first few KB of each split of the built-in Shakespeare data: the
    whole test split of TINY takes ~200 eval batches, this one a handful (for runs that test plumbing)."""
    import json

    from gpt_exp.data.sources import prepare

    folder = tmp_path_factory.mktemp("shakespeare_excerpt")
    overrides = ["data=text_files"]
    for split, size in (("train", 24_000), ("validation", 4_000), ("test", 4_000)):
        text = json.loads(prepare("shakespeare")[split].open().readline())["text"]
        (folder / f"{split}.txt").write_text(text[:size])
        overrides.append(f"data.files.{split}={folder / f'{split}.txt'}")
    return overrides
