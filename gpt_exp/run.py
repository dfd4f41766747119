"""The runner: one composed config in, one trained model and its records out.

`train` reads like nanoGPT's train.py in three steps, each a function on one page:
`build` (check the config, set up the device, load data and tokenizer, build the task's network, the
optimizer and the compiled steps, restore a checkpoint), `fit` (the loop: batch, step, log, evaluate,
checkpoint) and `finish` (the best weights on the test split, export, samples, plot, summary). What
they share is passed explicitly: a `Run` from build, the best evaluation from fit.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mindspore
import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from mindspore import Tensor, nn
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from gpt_exp.backend import device as devices
from gpt_exp import resume
from gpt_exp.config_check import check_settings
from gpt_exp.data.records import load_records
from gpt_exp.backend.distributed import SilentTracker, World
from gpt_exp.errors import ConfigError
from gpt_exp.model.build import adopt_loaded_model, build_model, init_folder
from gpt_exp.plots import plot_curves
from gpt_exp.backend.precision import (apply_precision, check_precision, choose_cpu_products, make_loss_scaler,
                               setup_precision)
from gpt_exp.tasks.base import Task
from gpt_exp.tokenizers import TextTokenizer
from gpt_exp.tracking import RunTracker, read_metrics
from gpt_exp.train import checkpoint
from gpt_exp.train.batches import BatchIterator
from gpt_exp.train.optim import build_optimizer
from gpt_exp.train.step import make_eval_step, make_train_step

log = logging.getLogger("gpt_exp")


def check_config(cfg: DictConfig) -> str:
    """Every check that needs no data or model, so bad input fails in seconds. Returns the device target.

    `check_settings` checks every key against the schema and against each other; what follows needs the
    machine: the device, what its CPU computes, a hub, a resume directory."""
    check_settings(cfg)
    target = devices.resolve_target(cfg.device)
    check_precision(cfg.precision, target)
    if cfg.tokenizer.get("_target_", "").endswith(".from_hub"):
        from gpt_exp.hub import require_hub

        require_hub(cfg.tokenizer.name, config_key="tokenizer.name",
                    fix="use a tokenizer built from local files: tokenizer=gpt2_bpe, bert_chinese or corpus_bpe")
    trainer = cfg.trainer
    if trainer.resume:
        if not checkpoint.candidates(Path(trainer.resume) / "checkpoints"):
            raise ConfigError(f"trainer.resume={trainer.resume} has no checkpoint in checkpoints/. "
                              f"Fix: give the directory of a run that saved a checkpoint.")
        resume.check_same_run(cfg, Path(trainer.resume))
    return target


def prepare_run_dir(cfg: DictConfig, run_dir: Path) -> None:
    """A new run gets a directory of its own: an earlier run there is refused, or cleared on request."""
    if cfg.paths.get("overwrite"):
        resume.clear_run_dir(run_dir)
    else:
        resume.refuse_existing_run(run_dir, "paths.output_dir" if cfg.paths.get("output_dir") else "hydra.run.dir")


def restore(state: checkpoint.TrainState, batches: BatchIterator, run_dir: Path, max_steps: int) -> dict:
    """Loads the newest good checkpoint and cuts the local record back to its step."""
    record, path = resume.load_newest_good(state, run_dir / "checkpoints")
    if max_steps < record["step"]:
        raise ConfigError(f"trainer.max_steps={max_steps}: the run in {run_dir} is at step {record['step']} already. "
                          f"Fix: give trainer.max_steps={record['step']} or more")
    batches.load_state_dict(record["batches"])
    dropped = resume.cut_metrics(run_dir, record["step"])
    for stale in ("summary.json", "error.txt"):  # they describe an attempt this one supersedes
        (run_dir / stale).unlink(missing_ok=True)
    log.info("resumed %s from %s at step %d (%d later rows of metrics.jsonl dropped)", run_dir, path.name,
             record["step"], dropped)
    return record


@dataclass
class Run:
    """What `build` makes for `fit` and `finish`: the parts of one run, passed to them explicitly."""
    cfg: DictConfig
    run_dir: Path
    run_name: str
    world: World
    task: Task
    tokenizer: TextTokenizer
    splits: dict            # split -> the task's arrays (train: this rank's shard)
    tokens_per_sample: int  # tokens the model reads per training sample (throughput)
    model: nn.Cell
    network: nn.Cell        # the task's head and loss around the model, with its precision
    batches: BatchIterator
    lrs: np.ndarray         # the learning rate of every step
    loss_scaler: object
    state: checkpoint.TrainState
    train_step: Callable
    eval_step: Callable
    max_steps: int
    tracker: RunTracker | SilentTracker
    start_step: int = 0            # a resumed run: the checkpoint's step
    start_best: dict | None = None  # and its best evaluation so far

    @property
    def best_path(self) -> Path:
        return self.run_dir / "checkpoints" / "best.ckpt"


def train(cfg: DictConfig, run_dir: Path, run_name: str, group: str | None = None) -> dict:
    """One run: build it from the config, fit it, finish it (test, export, report)."""
    run = build(cfg, run_dir, run_name, group)
    best = fit(run)
    if not run.world.is_main:  # rank 0 tests, exports and reports
        return {"rank": run.world.rank, "run_dir": str(run.run_dir)}
    return finish(run, best)


# ----------------------------------------------------------------------------- build

def build(cfg: DictConfig, run_dir: Path, run_name: str, group: str | None) -> Run:
    """Config in; data, tokenizer, arrays, model, optimizer, compiled steps and resume state out."""
    resume_dir = Path(cfg.trainer.resume) if cfg.trainer.resume else None
    world, target = setup_process(cfg, run_dir, resume_dir)
    run_dir = resume_dir or run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cfg.paths.cache_dir).expanduser()
    task, tokenizer, splits = build_data(cfg, cache_dir, world)
    tokens_per_sample = task.tokens_per_sample(splits["train"])

    model = build_model(cfg.model, tokenizer.vocab_size)
    adopt_loaded_model(cfg.model, model.config)  # config.yaml and W&B describe the weights that train
    choose_cpu_products(model, cfg.precision, target)
    network = apply_precision(task.build_network(model), cfg.precision)
    trainer = cfg.trainer
    batches = BatchIterator(splits["train"], trainer.batch_size, trainer.grad_accum_steps, cfg.seed)
    max_steps = count_steps(trainer, batches)
    optimizer, lrs = build_optimizer(network, cfg.optimizer, cfg.scheduler, max_steps)
    loss_scaler = make_loss_scaler(cfg.precision)
    state = checkpoint.TrainState(network, optimizer, loss_scaler)
    train_step = make_train_step(network, optimizer, loss_scaler, trainer.grad_accum_steps,
                                 trainer.max_grad_norm, trainer.compile, world.grad_reducer(optimizer.parameters),
                                 compile_cache_folder(cfg, cache_dir, tokenizer.vocab_size, world.size))
    eval_step = make_eval_step(network, trainer.compile)
    log.info("model: %s, %.2fM parameters, vocab %d; %d steps of %d x %d sequences on %s",
             cfg.model.name, model.num_parameters() / 1e6, tokenizer.vocab_size, max_steps, trainer.grad_accum_steps,
             trainer.batch_size, target)

    start_step, start_best, wandb_resume = 0, None, None
    if resume_dir:
        start_step, start_best, wandb_resume = resume_state(cfg, state, batches, run_dir, max_steps, world)
    if world.is_main:  # data parallel: rank 0 writes for every rank
        save_run_files(cfg, run_dir, tokenizer, resumed=bool(resume_dir))
    tracker = start_tracker(cfg, run_dir, run_name, group, world, wandb_resume, resumed=bool(resume_dir))
    return Run(cfg, run_dir, run_name, world, task, tokenizer, splits, tokens_per_sample, model, network, batches,
               lrs, loss_scaler, state, train_step, eval_step, max_steps, tracker, start_step, start_best)


def recorded_failures(resume_dir: Path | None):
    """A resume that fails before training leaves its error in the run's records (and starts no W&B run)."""
    return resume.failures_recorded(resume_dir) if resume_dir else nullcontext()


def setup_process(cfg: DictConfig, run_dir: Path, resume_dir: Path | None) -> tuple[World, str]:
    """The checks, the run directory, the seeds, the device and the other ranks: before any data or kernel."""
    with recorded_failures(resume_dir):
        target = check_config(cfg)
    if not resume_dir:
        prepare_run_dir(cfg, run_dir)
    seed_everything(cfg.seed, cfg.trainer.deterministic)  # before the communication init
    world = instantiate(cfg.distributed).setup(cfg.device, target)  # the device, then the other ranks (msrun)
    setup_precision(cfg.precision, target)  # CPU bf16 matrix products: before the first kernel
    return world, target


def build_data(cfg: DictConfig, cache_dir: Path, world: World) -> tuple[Task, TextTokenizer, dict]:
    """The task, the data's records, the tokenizer and the task's arrays of every split."""
    try:
        task = instantiate(cfg.task, _convert_="all")
    except InstantiationException as error:  # Hydra wraps a task's ConfigError: unwrap it for the CLI's message
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise
    records = load_records(cfg.data, cache_dir)
    tokenizer = build_tokenizer(cfg, task, records, cache_dir)
    task.prepare_tokenizer(tokenizer)
    splits = task.build_arrays(records, tokenizer, cfg.truncation, cfg.data)
    log.info("data: %s", ", ".join(f"{s} {len(next(iter(a.values())))} samples" for s, a in splits.items()))
    splits["train"] = world.shard(splits["train"])  # data parallel: this rank's 1/N of the training data
    return task, tokenizer, splits


def count_steps(trainer: DictConfig, batches: BatchIterator) -> int:
    """trainer.max_steps, or fewer where trainer.max_epochs ends the run first."""
    if not trainer.max_epochs:
        return trainer.max_steps
    epoch_steps = trainer.max_epochs * batches.batches_per_epoch // trainer.grad_accum_steps
    return min(trainer.max_steps, max(1, epoch_steps))


def resume_state(cfg: DictConfig, state: checkpoint.TrainState, batches: BatchIterator, run_dir: Path,
                 max_steps: int, world: World) -> tuple[int, dict | None, resume.WandbResume | None]:
    """Loads the checkpoint; returns its step, its best evaluation and how W&B meets the earlier record."""
    with recorded_failures(run_dir):
        record = restore(state, batches, run_dir, max_steps)
    wandb_resume = resume.plan_wandb(run_dir, record.get("wandb_id"), cfg.logger.mode) if world.is_main else None
    return record["step"], record["best"], wandb_resume


def save_run_files(cfg: DictConfig, run_dir: Path, tokenizer: TextTokenizer, resumed: bool) -> None:
    """The tokenizer and, for a new run, the resolved config (a resumed run keeps its own)."""
    tokenizer.save(run_dir / "tokenizer")
    if not resumed:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)


def start_tracker(cfg: DictConfig, run_dir: Path, run_name: str, group: str | None, world: World,
                  wandb_resume: resume.WandbResume | None, resumed: bool) -> RunTracker | SilentTracker:
    if not world.is_main:
        return SilentTracker()
    tracker = RunTracker(cfg, run_dir, run_name, group, wandb_resume=wandb_resume)
    if resumed:  # W&B gets the steps up to the checkpoint that it lacks
        tracker.replay(resume.rows_by_step(run_dir, tracker.wandb_last_step))
    return tracker


# ----------------------------------------------------------------------------- fit

@dataclass
class Window:
    """The training steps and time since the last training log line: its throughput."""
    start: float = field(default_factory=time.perf_counter)
    steps: int = 0


def fit(run: Run) -> dict | None:
    """The loop: one optimizer step per iteration (micro-batches accumulated, gradients clipped and the loss
    scaled inside train_step), then logging, evaluation and checkpoints at their intervals. Returns the best
    evaluation."""
    trainer, max_steps = run.cfg.trainer, run.max_steps
    best, skipped, window = run.start_best, 0, Window()
    run.network.set_train(True)
    progress = tqdm(range(run.start_step, max_steps), initial=run.start_step, total=max_steps, desc="training",
                    dynamic_ncols=True, disable=not run.world.is_main)
    for step in progress:
        batch = run.batches.next()
        loss, parts, grad_norm, finite = run.train_step(*[Tensor(batch[name]) for name in run.task.array_names])
        window.steps += 1
        done = step + 1
        if not bool(finite.asnumpy()):
            skipped += 1
        if done % trainer.log_interval == 0 or done == max_steps:
            metrics = training_metrics(run, step, loss, parts, grad_norm, skipped, window)
            log_training(run, progress, metrics, done)
            window = Window()
        if done % trainer.eval_interval == 0 or done == max_steps:
            best = validate(run, done, best)
            window = Window()  # neither the evaluation's time nor the steps before it count in the next throughput
        if done % trainer.checkpoint_interval == 0 or done == max_steps:
            save_checkpoint(run, None, done, best)
            window = Window()  # nor a checkpoint's save
    progress.close()
    return best


def training_metrics(run: Run, step: int, loss, parts, grad_norm, skipped: int, window: Window) -> dict:
    """The train/ row of a log step: loss over all ranks' batches, lr, gradient norm, throughput, loss scale."""
    trainer = run.cfg.trainer
    loss_value = float(run.world.mean(loss).asnumpy())  # waits for the step: the time below includes it
    elapsed = time.perf_counter() - window.start
    tokens_per_step = trainer.batch_size * trainer.grad_accum_steps * run.tokens_per_sample * run.world.size
    metrics = {"train/loss": loss_value, "train/lr": float(run.lrs[step]),
               "train/grad_norm": float(grad_norm.asnumpy()),
               "train/tokens_per_sec": tokens_per_step * window.steps / elapsed,
               "train/step_time_ms": 1000 * elapsed / window.steps,
               "train/loss_scale": float(run.loss_scaler.scale_value.asnumpy()), "train/skipped_steps": skipped}
    metrics.update({f"train/{n}": float(p.asnumpy()) for n, p in zip(run.task.loss_part_names, parts)})
    return metrics


def log_training(run: Run, progress: tqdm, metrics: dict, step: int) -> None:
    """Records the train/ row and shows it on the progress bar; a float32 run stops at a non-finite loss."""
    run.tracker.log(metrics, step)
    loss_value = metrics["train/loss"]
    progress.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{metrics['train/tokens_per_sec']:.0f}")
    if not math.isfinite(loss_value) and run.cfg.precision.dtype == "float32":
        raise FloatingPointError(f"the training loss is {loss_value} at step {step}: lower optimizer.lr")


def evaluate(run: Run, split: str) -> dict:
    """The task's metrics on a split, in inference mode (no dropout)."""
    trainer = run.cfg.trainer
    run.network.set_train(False)
    metrics = run.task.evaluate(run.eval_step, run.splits[split], trainer.batch_size,
                                trainer.eval_batches if split == "validation" else trainer.test_batches)
    run.network.set_train(True)
    return metrics


def validate(run: Run, step: int, best: dict | None) -> dict | None:
    """Evaluates on the validation split and logs it; a better result saves best.ckpt. Returns the best so far."""
    metrics = evaluate(run, "validation")
    run.tracker.log({f"eval/{k}": v for k, v in metrics.items()}, step)
    log.info("step %d: %s", step, "  ".join(f"eval/{k} {v:.4f}" for k, v in metrics.items()))
    task = run.task
    if not task.improves(metrics, best):  # ties on the main metric: the lower loss wins
        return best
    best = {"value": metrics[task.main_metric], "step": step, "metric": task.main_metric, "loss": metrics.get("loss")}
    save_checkpoint(run, run.best_path, step, best)
    return best


def save_checkpoint(run: Run, path: Path | None, step: int, best: dict | None) -> None:
    """`path` None: the step checkpoint (step-NNNNNN.ckpt, last.ckpt, the newest keep_checkpoints kept).
    The record holds what a resume needs besides the weights: the step, the best so far, the data position."""
    if not run.world.is_main:
        return
    record = {"step": step, "best": best, "batches": run.batches.state_dict(), "wandb_id": run.tracker.run_id}
    if path is None:
        checkpoint.save_step(run.state, run.run_dir / "checkpoints", step, record, run.cfg.trainer.keep_checkpoints)
    else:
        checkpoint.save(run.state, path, record)


# ----------------------------------------------------------------------------- finish

def finish(run: Run, best: dict | None) -> dict:
    """The best weights on the test split, the exported model, samples, the loss plot, summary and W&B finish."""
    task, tracker, max_steps = run.task, run.tracker, run.max_steps
    if best is None:  # trainer.max_steps=0: evaluate the initial weights (e.g. zero-shot)
        metrics = evaluate(run, "validation")
        tracker.log({f"eval/{k}": v for k, v in metrics.items()}, max_steps)
        best = {"value": metrics[task.main_metric], "step": max_steps, "metric": task.main_metric}
    elif run.best_path.exists():
        checkpoint.load(run.state, run.best_path)
    test_metrics = evaluate(run, "test")
    tracker.log({f"test/{k}": v for k, v in test_metrics.items()}, max_steps)
    export_model(run.model, run.tokenizer, run.run_dir / "model")
    report = task.final_report(run.model, run.tokenizer, run.splits, tracker, max_steps)
    plot = plot_curves({run.run_name: read_metrics(run.run_dir)}, ["train/loss", "eval/loss"],
                       run.run_dir / "loss.png", run.run_name)
    if plot:
        tracker.log_image("loss_curves", plot, step=max_steps)
    summary = {"best/" + task.main_metric: best["value"], "best/step": best["step"],
               **{f"test/{k}": v for k, v in test_metrics.items()}}
    tracker.set_summary(summary)
    tracker.finish("finished", {"run_name": run.run_name, "main_metric": f"eval/{task.main_metric}",
                                "greater_is_better": task.greater_is_better, "init_from": run.cfg.model.init_from})
    log.info("done: %s; run directory %s", "  ".join(f"{k} {v:.4f}" for k, v in summary.items() if v is not None),
             run.run_dir)
    for prompt, completion in report.get("samples", []):
        log.info("sample | %s%s", prompt, completion)
    return {**summary, "run_dir": str(run.run_dir)}


def seed_everything(seed: int, deterministic: bool) -> None:
    """The same seed, config and host give the same numbers: MindSpore's seed (initial weights, dropout
    masks), numpy's, and MindSpore's deterministic kernels (`trainer.deterministic`)."""
    mindspore.set_seed(seed)
    np.random.seed(seed)
    from mindspore.device_manager import DeviceManagerConf

    # MindSpore allows one setting per process: a multirun's or a test's later jobs keep the first one
    if not DeviceManagerConf.get_instance().is_deterministic_configured():
        mindspore.set_deterministic(bool(deterministic))


def compile_cache_folder(cfg: DictConfig, cache_dir: Path, vocab_size: int, world_size: int) -> Path | None:
    """Where this run's compiled train step is cached (trainer.compile_cache), keyed by what builds it."""
    if not (cfg.trainer.compile and cfg.trainer.get("compile_cache")):
        return None
    if world_size > 1:  # each rank would write its own rank_N folder: not measured yet, so compiled as before
        log.info("compile cache: off in data parallel runs")
        return None
    from gpt_exp.train.compile_cache import graph_key

    return cache_dir / "compile" / graph_key(cfg, vocab_size)


def build_tokenizer(cfg: DictConfig, task, records, cache_dir: Path) -> TextTokenizer:
    """A fine-tune keeps the vocabulary of the run or checkpoint it starts from."""
    folder = init_folder(cfg.model.get("init_from"))
    if folder and (folder / "special_tokens.json").exists():
        return TextTokenizer.load(folder)
    if cfg.trainer.resume and (Path(cfg.trainer.resume) / "tokenizer" / "tokenizer.json").exists():
        return TextTokenizer.load(Path(cfg.trainer.resume) / "tokenizer")
    data = cfg.data
    corpus_id = f"{data.get('name') or data.get('hub_id') or sorted(data.files.items())}:{task.name}:{data.get('max_train_samples')}"
    builder = instantiate(cfg.tokenizer)
    return builder(cache_dir=cache_dir, corpus=lambda: task.corpus_texts(records), corpus_id=corpus_id)


def export_model(model, tokenizer: TextTokenizer, folder: Path) -> None:
    """HF-format weights (loadable by MindNLP / transformers) with the tokenizer beside them."""
    from gpt_exp.model.hf_weights import save_pretrained

    save_pretrained(model, folder, special_token_ids(tokenizer))
    tokenizer.save(folder)
    write_hf_tokenizer_config(tokenizer, folder, model.config.n_positions)


def special_token_ids(tokenizer: TextTokenizer) -> dict[str, int]:
    """HF's config.json keys for the tokenizer's roles; a vocabulary without a bos starts texts with eos (GPT-2)."""
    bos = tokenizer.token_id("bos") if tokenizer.has_role("bos") else tokenizer.eos_id
    return {"bos_token_id": bos, "eos_token_id": tokenizer.eos_id, "pad_token_id": tokenizer.pad_id}


def write_hf_tokenizer_config(tokenizer: TextTokenizer, folder: Path, max_length: int) -> None:
    """tokenizer_config.json, so that transformers' AutoTokenizer reads tokenizer.json with the right special
    tokens (from config.json's model_type alone it would guess GPT-2's <|endoftext|> for every role)."""
    import json

    roles = {f"{role}_token": tokenizer.special_tokens[role] for role in ("bos", "eos", "pad", "unk", "sep")
             if tokenizer.has_role(role)}
    roles.setdefault("bos_token", tokenizer.special_tokens["eos"])
    roles.setdefault("pad_token", roles["eos_token"])
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
         "clean_up_tokenization_spaces": False, **roles},  # decode as gpt_exp does, without HF's " ." -> "."
        indent=2, ensure_ascii=False))
