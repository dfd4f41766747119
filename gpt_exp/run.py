"""The runner: one composed config in, one trained model and its records out.

Reads top to bottom like nanoGPT's train.py: check the config, set up the device, load data and
tokenizer, build the task's network, then the loop (batch, step, log, evaluate, checkpoint),
then the final evaluation on the test split with the best weights.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path

import mindspore
import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from mindspore import Tensor
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from gpt_exp import device as devices
from gpt_exp import resume
from gpt_exp.config_check import check_settings
from gpt_exp.data.records import load_records
from gpt_exp.distributed import SilentTracker
from gpt_exp.errors import ConfigError
from gpt_exp.model.build import adopt_loaded_model, build_model, init_folder
from gpt_exp.plots import plot_curves
from gpt_exp.precision import (apply_precision, check_precision, choose_cpu_products, make_loss_scaler,
                               setup_precision)
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


def train(cfg: DictConfig, run_dir: Path, run_name: str, group: str | None = None) -> dict:
    resume_dir = Path(cfg.trainer.resume) if cfg.trainer.resume else None
    # a resume that fails before training leaves its error in the run's records (and starts no W&B run)
    resume_failures = (lambda: resume.failures_recorded(resume_dir)) if resume_dir else nullcontext
    with resume_failures():
        target = check_config(cfg)
    if not resume_dir:
        prepare_run_dir(cfg, run_dir)
    seed_everything(cfg.seed, cfg.trainer.deterministic)  # before the communication init
    world = instantiate(cfg.distributed).setup(cfg.device, target)  # the device, then the other ranks (msrun)
    setup_precision(cfg.precision, target)  # CPU bf16 matrix products: before the first kernel
    run_dir = resume_dir or run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cfg.paths.cache_dir).expanduser()

    # data, tokenizer and the task's arrays
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

    # model, optimizer and the compiled steps
    model = build_model(cfg.model, tokenizer.vocab_size)
    adopt_loaded_model(cfg.model, model.config)  # config.yaml and W&B describe the weights that train
    choose_cpu_products(model, cfg.precision, target)
    network = apply_precision(task.build_network(model), cfg.precision)
    trainer = cfg.trainer
    batches = BatchIterator(splits["train"], trainer.batch_size, trainer.grad_accum_steps, cfg.seed)
    max_steps = trainer.max_steps
    if trainer.max_epochs:
        max_steps = min(max_steps, max(1, trainer.max_epochs * batches.batches_per_epoch // trainer.grad_accum_steps))
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

    start_step, best, wandb_resume = 0, None, None
    checkpoints, best_path = run_dir / "checkpoints", run_dir / "checkpoints" / "best.ckpt"
    if resume_dir:
        with resume_failures():
            record = restore(state, batches, run_dir, max_steps)
        start_step, best = record["step"], record["best"]
        if world.is_main:
            wandb_resume = resume.plan_wandb(run_dir, record.get("wandb_id"), cfg.logger.mode)
    if world.is_main:  # data parallel: rank 0 writes for every rank
        tokenizer.save(run_dir / "tokenizer")
        if not resume_dir:
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    tracker = (RunTracker(cfg, run_dir, run_name, group, wandb_resume=wandb_resume) if world.is_main
               else SilentTracker())
    if resume_dir and world.is_main:  # W&B gets the steps up to the checkpoint that it lacks
        tracker.replay(resume.rows_by_step(run_dir, tracker.wandb_last_step))

    # the loop
    def evaluate(split: str) -> dict:
        network.set_train(False)
        metrics = task.evaluate(eval_step, splits[split], trainer.batch_size,
                                trainer.eval_batches if split == "validation" else trainer.test_batches)
        network.set_train(True)
        return metrics

    def save_checkpoint(path: Path | None, step: int) -> None:
        """`path` None: the step checkpoint (step-NNNNNN.ckpt, last.ckpt, the newest keep_checkpoints kept)."""
        if world.is_main:
            record = {"step": step, "best": best, "batches": batches.state_dict(), "wandb_id": tracker.run_id}
            if path is None:
                checkpoint.save_step(state, checkpoints, step, record, trainer.keep_checkpoints)
            else:
                checkpoint.save(state, path, record)

    tokens_per_step = trainer.batch_size * trainer.grad_accum_steps * task.tokens_per_sample * world.size
    network.set_train(True)
    skipped, window_start, window_steps = 0, time.perf_counter(), 0
    progress = tqdm(range(start_step, max_steps), initial=start_step, total=max_steps, desc="training",
                    dynamic_ncols=True, disable=not world.is_main)
    for step in progress:
        batch = batches.next()
        loss, parts, grad_norm, finite = train_step(*[Tensor(batch[name]) for name in task.array_names])
        window_steps += 1
        done = step + 1
        if not bool(finite.asnumpy()):
            skipped += 1
        if done % trainer.log_interval == 0 or done == max_steps:
            loss_value = float(world.mean(loss).asnumpy())  # over all ranks' batches
            elapsed = time.perf_counter() - window_start
            metrics = {"train/loss": loss_value, "train/lr": float(lrs[step]), "train/grad_norm": float(grad_norm.asnumpy()),
                       "train/tokens_per_sec": tokens_per_step * window_steps / elapsed,
                       "train/step_time_ms": 1000 * elapsed / window_steps,
                       "train/loss_scale": float(loss_scaler.scale_value.asnumpy()), "train/skipped_steps": skipped}
            metrics.update({f"train/{n}": float(p.asnumpy()) for n, p in zip(task.loss_part_names, parts)})
            tracker.log(metrics, done)
            progress.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{metrics['train/tokens_per_sec']:.0f}")
            if not math.isfinite(loss_value) and cfg.precision.dtype == "float32":
                raise FloatingPointError(f"the training loss is {loss_value} at step {done}: lower optimizer.lr")
            window_start, window_steps = time.perf_counter(), 0
        if done % trainer.eval_interval == 0 or done == max_steps:
            metrics = evaluate("validation")
            tracker.log({f"eval/{k}": v for k, v in metrics.items()}, done)
            log.info("step %d: %s", done, "  ".join(f"eval/{k} {v:.4f}" for k, v in metrics.items()))
            if task.improves(metrics, best):  # ties on the main metric: the lower loss wins
                best = {"value": metrics[task.main_metric], "step": done, "metric": task.main_metric,
                        "loss": metrics.get("loss")}
                save_checkpoint(best_path, done)
            window_start = time.perf_counter()  # evaluation time is not training throughput
        if done % trainer.checkpoint_interval == 0 or done == max_steps:
            save_checkpoint(None, done)
    progress.close()
    if not world.is_main:  # rank 0 tests, exports and reports
        return {"rank": world.rank, "run_dir": str(run_dir)}

    # the end: best weights, test split, exported model, samples, plot
    if best is None:  # trainer.max_steps=0: evaluate the initial weights (e.g. zero-shot)
        metrics = evaluate("validation")
        tracker.log({f"eval/{k}": v for k, v in metrics.items()}, max_steps)
        best = {"value": metrics[task.main_metric], "step": max_steps, "metric": task.main_metric}
    elif best_path.exists():
        checkpoint.load(state, best_path)
    test_metrics = evaluate("test")
    tracker.log({f"test/{k}": v for k, v in test_metrics.items()}, max_steps)
    export_model(model, tokenizer, run_dir / "model")
    report = task.final_report(model, tokenizer, splits, tracker, max_steps)
    plot = plot_curves({run_name: read_metrics(run_dir)}, ["train/loss", "eval/loss"], run_dir / "loss.png", run_name)
    if plot:
        tracker.log_image("loss_curves", plot, step=max_steps)
    summary = {"best/" + task.main_metric: best["value"] if best else None, "best/step": best["step"] if best else None,
               **{f"test/{k}": v for k, v in test_metrics.items()}}
    tracker.set_summary(summary)
    tracker.finish("finished", {"run_name": run_name, "main_metric": f"eval/{task.main_metric}",
                                "greater_is_better": task.greater_is_better, "init_from": cfg.model.init_from})
    log.info("done: %s; run directory %s", "  ".join(f"{k} {v:.4f}" for k, v in summary.items() if v is not None),
             run_dir)
    for prompt, completion in report.get("samples", []):
        log.info("sample | %s%s", prompt, completion)
    return {**summary, "run_dir": str(run_dir)}


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
