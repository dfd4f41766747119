"""Data parallel over 2 CPU processes started by msrun: same weights on both ranks, the same step as
one process on the combined batch, and a full gpt_exp run where only rank 0 writes.

Run as a script (`python tests/test_distributed.py ROLE OUT TEXT`), this file is also the worker
msrun starts for the step-level comparison.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY, compose

from gpt_exp.errors import ConfigError

STEPS, GLOBAL_BATCH, BLOCK = 3, 8, 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _venv_env() -> dict:
    """msrun starts its workers with the `python` on PATH: make it this interpreter."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "GLOG_v": "3",
            "PYTHONPATH": str(ROOT / "tests")}


def _msrun(args: list[str], log_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    msrun = shutil.which("msrun", path=_venv_env()["PATH"])
    assert msrun, "msrun (installed with mindspore) is not on PATH"
    return subprocess.run([msrun, "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}",
                           f"--log_dir={log_dir}", "--join=True", "--cluster_time_out=240", *args], cwd=ROOT, env=_venv_env(),
                          capture_output=True, text=True, timeout=timeout)


def _shakespeare_bytes() -> Path:
    """Real text; its bytes are the token ids (vocab 256) so no tokenizer enters the comparison."""
    from gpt_exp.data.sources import prepare

    record = json.loads(prepare("shakespeare")["train"].open().readline())
    return record["text"].encode("utf-8")[: STEPS * GLOBAL_BATCH * (BLOCK + 1)]


def worker(role: str, out: Path, text_path: Path) -> None:
    """role rank: one of the msrun ranks, on rows rank::N of every global batch; full: one process on the
    whole batch; half: one process on rows 0::2 only (what a rank would do with no all-reduce)."""
    import mindspore
    from mindspore import Tensor
    from omegaconf import OmegaConf

    from gpt_exp.backend.distributed import DataParallel, SingleProcess
    from gpt_exp.model.build import build_model
    from gpt_exp.backend.precision import make_loss_scaler
    from gpt_exp.tasks.lm import CausalLMNetwork
    from gpt_exp.train.optim import build_optimizer
    from gpt_exp.train.step import make_train_step

    device = OmegaConf.create({"name": "cpu", "target": "CPU", "device_id": 0, "num_threads": 1})
    world = (DataParallel() if role == "rank" else SingleProcess()).setup(device, "CPU")
    cfg = compose(TINY + ["model.dropout=0.0", "scheduler=constant", "optimizer.lr=1e-2"])
    mindspore.set_seed(7)
    network = CausalLMNetwork(build_model(cfg.model, 256))
    optimizer, _ = build_optimizer(network, cfg.optimizer, cfg.scheduler, STEPS)
    step = make_train_step(network, optimizer, make_loss_scaler(cfg.precision), 1, cfg.trainer.max_grad_norm,
                           True, world.grad_reducer(optimizer.parameters))
    tokens = np.frombuffer(text_path.read_bytes(), dtype=np.uint8).astype(np.int32).reshape(-1, BLOCK + 1)
    losses = []
    for i in range(STEPS):
        batch = tokens[i * GLOBAL_BATCH:(i + 1) * GLOBAL_BATCH]
        rows = {"rank": batch[world.rank::world.size], "full": batch, "half": batch[0::2]}[role]
        loss, _, _, _ = step(Tensor(rows[None]))
        losses.append(float(world.mean(loss).asnumpy()))
    np.savez(out / f"{role}{world.rank}.npz", losses=np.array(losses),
             **{p.name: p.asnumpy() for p in network.trainable_params()})


def _params(path: Path) -> dict:
    with np.load(path) as saved:
        return {k: saved[k] for k in saved.files}


def test_shards_are_disjoint_and_equal():
    from gpt_exp.backend.distributed import World

    arrays = {"tokens": np.arange(11 * 3).reshape(11, 3), "label": np.arange(11)}
    shards = [World(rank, 3).shard(arrays) for rank in range(3)]
    assert [len(s["label"]) for s in shards] == [3, 3, 3]  # 11 -> 9 rows: every rank has as many batches
    seen = np.concatenate([s["label"] for s in shards])
    assert sorted(seen) == list(range(9))
    assert all((s["tokens"][:, 0] == s["label"] * 3).all() for s in shards)  # rows stay aligned
    assert World().shard(arrays) is arrays


def test_data_parallel_outside_msrun_fails_with_the_fix(tmp_path):
    from gpt_exp.run import train

    with pytest.raises(ConfigError, match="msrun --worker_num"):
        train(compose(TINY + ["distributed=data_parallel"]), tmp_path / "run", "dp")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_msrun_without_data_parallel_is_refused(monkeypatch):
    from omegaconf import OmegaConf

    from gpt_exp.backend.distributed import SingleProcess

    monkeypatch.setenv("MS_ROLE", "MS_WORKER")
    monkeypatch.setenv("MS_WORKER_NUM", "2")
    with pytest.raises(ConfigError, match="distributed=data_parallel"):
        SingleProcess().setup(OmegaConf.create({"target": "CPU", "device_id": 0}), "CPU")


@pytest.mark.slow
def test_two_ranks_take_the_step_of_one_process_on_the_combined_batch(tmp_path):
    text = tmp_path / "text.bin"
    text.write_bytes(_shakespeare_bytes())
    script = str(Path(__file__).resolve())
    done = _msrun([script, "rank", str(tmp_path), str(text)], tmp_path / "logs")
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted((tmp_path / "logs").glob("worker_*.log")))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + logs
    for role in ("full", "half"):
        single = subprocess.run([sys.executable, script, role, str(tmp_path), str(text)], cwd=ROOT, env=_venv_env(),
                                capture_output=True, text=True, timeout=300)
        assert single.returncode == 0, single.stderr[-3000:]

    rank0, rank1 = _params(tmp_path / "rank0.npz"), _params(tmp_path / "rank1.npz")
    full, half = _params(tmp_path / "full0.npz"), _params(tmp_path / "half0.npz")
    assert set(rank0) == set(full) and len(rank0) > 10
    for name in rank0:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=f"ranks disagree on {name}")
        np.testing.assert_allclose(rank0[name], full[name], rtol=1e-4, atol=2e-5, err_msg=name)
    # the comparison can fail: without the all-reduce a rank would move elsewhere
    drift = max(np.abs(half[n] - full[n]).max() for n in full if n != "losses")
    agreement = max(np.abs(rank0[n] - full[n]).max() for n in full if n != "losses")
    assert drift > 100 * max(agreement, 1e-7), (drift, agreement)
    assert rank0["losses"][-1] < rank0["losses"][0]  # and it trains


@pytest.mark.slow
def test_gpt_exp_trains_data_parallel_under_msrun_and_only_rank_0_writes(tmp_path, shakespeare_excerpt):
    run_dir = tmp_path / "run"
    gpt_exp = Path(sys.executable).parent / "gpt-exp"  # the console script: msrun needs a script file
    args = TINY + shakespeare_excerpt + ["distributed=data_parallel", "trainer.max_steps=6", "trainer.eval_interval=3",
                   "trainer.log_interval=2", "trainer.checkpoint_interval=3", "task.sample_max_new_tokens=4",
                   "logger.mode=offline", f"hydra.run.dir={run_dir}"]
    done = _msrun([str(gpt_exp), *args], tmp_path / "logs")
    worker_logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "logs").glob("worker_*.log")}
    assert done.returncode == 0, done.stdout[-3000:] + "\n".join(v[-3000:] for v in worker_logs.values())
    assert "data parallel: rank 0 of 2" in worker_logs["worker_0.log"]
    assert "data parallel: rank 1 of 2" in worker_logs["worker_1.log"]

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["summary"]["test/loss"] > 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged_steps = [r["step"] for r in rows if "train/loss" in r]
    assert logged_steps == [2, 4, 6], "each step is logged once, by rank 0"
    # throughput counts both ranks' tokens: 2 x batch 8 x 64 tokens a step
    assert all(r["train/tokens_per_sec"] > 0 for r in rows if "train/loss" in r)
    assert len(list(run_dir.glob("wandb/offline-run-*"))) == 1, "one W&B run, not one per rank"
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and (run_dir / "model" / "model.safetensors").exists()
    assert "done:" in worker_logs["worker_0.log"] and "done:" not in worker_logs["worker_1.log"]


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
