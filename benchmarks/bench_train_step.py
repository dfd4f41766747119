"""Time gpt_exp's train step against PyTorch + Hugging Face transformers on the same GPT-2, side by side.

    python benchmarks/bench_train_step.py                          # gpt2-tiny and gpt2, fp32 and bf16
    python benchmarks/bench_train_step.py --models gpt2 --precisions fp32 --repeats 5
    python benchmarks/bench_train_step.py --models gpt2 --profile /tmp/ms_profile   # + where MindSpore's time goes

Both sides train the same architecture (GPT-2 BPE vocabulary of 50,257, dropout 0.1, AdamW with decoupled
weight decay, gradient clipping at 1.0) on the same batch shape with the same number of threads:
- gpt_exp: its own `train_step` (gpt_exp/train/step.py) under `mindspore.jit`, built exactly as the runner
  builds it, fed by the runner's BatchIterator; precision `fp32` or `bf16_matmul` (conf/precision/).
- PyTorch: `GPT2LMHeadModel` in eager mode, `torch.optim.AdamW`, `clip_grad_norm_`; `bf16` = `torch.autocast`.

Each side runs in its own worker process, kept alive: after its warm-up (MindSpore compiles), the main
process asks the workers for timed steps in turns - gpt_exp, PyTorch, gpt_exp, ... - so the load of a
shared machine falls on both alike. The load average is printed with the table.

PyTorch is optional and only for this benchmark (pip install -e '.[bench]', or a separate venv given by
--torch-python / $GPT_EXP_BENCH_PYTHON, which keeps torch and transformers out of gpt_exp's own venv).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "@@bench "  # worker -> main protocol lines; everything else a worker prints is its own log
VOCAB = 50257  # GPT-2's BPE vocabulary for both model sizes, as with tokenizer=gpt2_bpe

# the same shapes as conf/model/*.yaml
MODELS = {
    "gpt2-tiny": dict(n_layer=4, n_head=4, n_embd=128, n_positions=256),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024),
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024, n_positions=1024),
}
# --precisions name -> (gpt_exp's precision option on the CPU, what the PyTorch side does)
PRECISIONS = {"fp32": ("fp32", "fp32"), "bf16": ("bf16_matmul", "bf16 autocast"), "fp16": ("fp16", "fp16 autocast")}


def emit(kind: str, **payload) -> None:
    print(PREFIX + json.dumps({"kind": kind, **payload}), flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def flops_per_step(model: dict, batch: int, seq: int) -> float:
    """nanoGPT's estimate: 6 N per token for the weights (N without position embeddings) + attention."""
    c, layers = model["n_embd"], model["n_layer"]
    n = VOCAB * c + layers * (12 * c * c + 13 * c) + 2 * c  # wte + blocks + ln_f
    return (6 * n + 12 * layers * c * seq) * batch * seq


# --- the gpt_exp side ------------------------------------------------------------------------------------

def mindspore_worker(args) -> None:
    os.environ.setdefault("GLOG_v", "3")
    import mindspore
    import numpy as np
    from hydra import compose, initialize_config_dir
    from mindspore import Tensor

    from gpt_exp import device as devices
    from gpt_exp.model.build import build_model
    from gpt_exp.precision import (apply_precision, check_precision, choose_cpu_products, make_loss_scaler,
                                   setup_precision)
    from gpt_exp.tasks.lm import CausalLMNetwork
    from gpt_exp.train.batches import BatchIterator
    from gpt_exp.train.optim import build_optimizer
    from gpt_exp.train.step import make_train_step

    shape = MODELS[args.model]
    overrides = [f"model={args.model}", "device=cpu", f"device.num_threads={args.threads}",
                 f"precision={PRECISIONS[args.precision][0]}", f"trainer.batch_size={args.batch_size}",
                 f"task.max_seq_len={args.seq_len}"] + [f"model.{k}={v}" for k, v in shape.items()]
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="train", overrides=overrides)
    check_precision(cfg.precision, "CPU")
    devices.configure(cfg.device, "CPU")
    setup_precision(cfg.precision, "CPU")
    if args.jit_level:
        mindspore.set_context(jit_config={"jit_level": args.jit_level})

    mindspore.set_seed(0)
    model = build_model(cfg.model, VOCAB)
    choose_cpu_products(model, cfg.precision, "CPU")  # as the runner does
    network = apply_precision(CausalLMNetwork(model), cfg.precision)
    network.set_train(True)
    optimizer, _ = build_optimizer(network, cfg.optimizer, cfg.scheduler, 100_000)
    step = make_train_step(network, optimizer, make_loss_scaler(cfg.precision), 1, cfg.trainer.max_grad_norm,
                           compile=True)
    tokens = np.random.default_rng(0).integers(0, VOCAB, (2048, args.seq_len + 1)).astype(np.int32)
    batches = BatchIterator({"tokens": tokens}, args.batch_size, 1, seed=0)

    def run(count: int, timed: bool = True):
        step_ms, data_ms, losses = [], [], []
        for _ in range(count):
            start = time.perf_counter()
            x = Tensor(batches.next()["tokens"])  # what the runner does per step
            loaded = time.perf_counter()
            loss, _, _, _ = step(x)
            losses.append(float(loss.asnumpy()))  # waits for the step
            done = time.perf_counter()
            data_ms.append(1000 * (loaded - start))
            step_ms.append(1000 * (done - start))
        return {"step_ms": step_ms, "data_ms": data_ms, "loss": losses}

    start = time.perf_counter()
    run(1)
    compile_s = time.perf_counter() - start
    run(args.warmup)
    emit("ready", compile_s=compile_s, params=sum(int(p.size) for p in network.trainable_params()),
         version=f"MindSpore {mindspore.__version__}")
    serve(run, lambda: mindspore_profile(run, args.profile) if args.profile else None)


def mindspore_profile(run, folder: str) -> list:
    """Two steps under MindSpore's profiler; the op types by total time."""
    from mindspore.profiler import ProfilerActivity, profile, tensorboard_trace_handler

    with profile(activities=[ProfilerActivity.CPU], on_trace_ready=tensorboard_trace_handler(folder)):
        run(2)
    table = sorted(Path(folder).rglob("cpu_op_type_info_*.csv"), key=lambda p: p.stat().st_mtime)[-1]
    import csv

    rows = list(csv.DictReader(table.open()))
    total = sum(float(r["total_compute_time"]) for r in rows)
    rows.sort(key=lambda r: -float(r["total_compute_time"]))
    return [(r["op_type"], int(r["execution_frequency(per-step)"]), float(r["total_compute_time"]) / 2,
             float(r["total_compute_time"]) / total) for r in rows[:15]]


# --- the PyTorch side ------------------------------------------------------------------------------------

def torch_worker(args) -> None:
    import numpy as np
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = MODELS[args.model]
    config = GPT2Config(vocab_size=VOCAB, activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1,
                        attn_pdrop=0.1, **shape)
    model = GPT2LMHeadModel(config)
    model.train()
    decayed = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}],
                                  lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    mode = PRECISIONS[args.precision][1]
    autocast = {"bf16 autocast": torch.bfloat16, "fp16 autocast": torch.float16}.get(mode)
    scaler = torch.amp.GradScaler("cpu") if autocast == torch.float16 else None
    tokens = np.random.default_rng(0).integers(0, VOCAB, (2048, args.seq_len + 1)).astype(np.int64)
    rng = np.random.default_rng(1)

    def train_step(x):
        with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            logits = model(x[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB).float(), x[:, 1:].reshape(-1))
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    def run(count: int):
        step_ms, data_ms, losses = [], [], []
        for _ in range(count):
            start = time.perf_counter()
            x = torch.from_numpy(tokens[rng.integers(0, len(tokens), args.batch_size)])
            loaded = time.perf_counter()
            losses.append(float(train_step(x)))
            done = time.perf_counter()
            data_ms.append(1000 * (loaded - start))
            step_ms.append(1000 * (done - start))
        return {"step_ms": step_ms, "data_ms": data_ms, "loss": losses}

    start = time.perf_counter()
    run(1)
    compile_s = time.perf_counter() - start
    run(args.warmup)
    emit("ready", compile_s=compile_s, params=sum(p.numel() for p in model.parameters()),
         version=f"PyTorch {torch.__version__.split('+')[0]}, transformers {transformers.__version__}, "
                 f"attention {model.config._attn_implementation}")
    serve(run, lambda: None)


def serve(run, profile) -> None:
    for line in sys.stdin:
        command = line.split()
        if command[0] == "run":
            emit("steps", **run(int(command[1])))
        elif command[0] == "finish":
            emit("finish", peak_rss_mb=peak_rss_mb(), profile=profile())
            return


# --- the main process ------------------------------------------------------------------------------------

class Worker:
    def __init__(self, name: str, python: str, args, extra: list[str]):
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
               "GLOG_v": "3", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        if args.omp_wait_policy != "default":
            env["OMP_WAIT_POLICY"] = args.omp_wait_policy
        command = [python, __file__, "--worker", name, "--model", args.model_now, "--precision", args.precision_now,
                   "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--threads", str(args.threads),
                   "--warmup", str(args.warmup), *extra]
        self.name = name
        self.log = open(Path(args.log_dir) / f"{name}-{args.model_now}-{args.precision_now}.log", "w")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True, env=env, cwd=args.log_dir)

    def receive(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX):])
            self.log.write(line)
        raise RuntimeError(f"the {self.name} worker stopped (exit {self.process.wait()}); see {self.log.name}")

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.receive()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def torch_python(args) -> str | None:
    candidates = [args.torch_python, os.environ.get("GPT_EXP_BENCH_PYTHON"), sys.executable,
                  str(ROOT.parent / "bench-venv" / "bin" / "python")]
    for python in filter(None, candidates):
        probe = subprocess.run([python, "-c", "import torch, transformers"], capture_output=True)
        if probe.returncode == 0:
            return os.path.abspath(python)  # absolute: the workers run in --log-dir (not resolve(): a venv's python is a symlink)
    return None


def measure(args, python_for_torch: str | None) -> list[dict]:
    extra = (["--profile", args.profile] if args.profile else []) + (["--jit-level", args.jit_level] if args.jit_level else [])
    workers = [Worker("gpt_exp", sys.executable, args, extra)]
    if python_for_torch:
        workers.append(Worker("pytorch", python_for_torch, args, []))
    ready = {w.name: w.receive() for w in workers}  # both warm up at once: only timed steps are taken in turns
    samples = {w.name: {"step_ms": [], "data_ms": [], "loss": []} for w in workers}
    loads = [load_average()]
    for repeat in range(args.repeats):
        for worker in workers if repeat % 2 == 0 else workers[::-1]:
            for key, values in worker.ask(f"run {args.steps}").items():
                if key in samples[worker.name]:
                    samples[worker.name][key] += values
        loads.append(load_average())
        print(f"  {args.model_now} {args.precision_now} repeat {repeat + 1}/{args.repeats}: " + ", ".join(
            f"{n} {statistics.median(s['step_ms']):.0f} ms" for n, s in samples.items()), flush=True)
    results = []
    for worker in workers:
        finish = worker.ask("finish")
        worker.process.wait(timeout=120)
        s = samples[worker.name]
        step_ms = statistics.median(s["step_ms"])
        tokens = args.batch_size * args.seq_len
        flops = flops_per_step(MODELS[args.model_now], args.batch_size, args.seq_len)
        results.append({
            "model": args.model_now, "precision": args.precision_now, "side": worker.name,
            "setup": PRECISIONS[args.precision_now][0 if worker.name == "gpt_exp" else 1],
            "version": ready[worker.name]["version"], "ms_per_step": step_ms, "tokens_per_s": tokens / step_ms * 1000,
            "mfu": flops / (step_ms / 1000) / (args.peak_gflops * 1e9), "peak_rss_mb": finish["peak_rss_mb"],
            "data_share": statistics.median(s["data_ms"]) / step_ms, "first_step_s": ready[worker.name]["compile_s"],
            "steps": len(s["step_ms"]), "spread_ms": (min(s["step_ms"]), max(s["step_ms"])),
            "last_loss": s["loss"][-1], "load": loads, "profile": finish.get("profile")})
    return results


def print_table(results: list[dict], args) -> None:
    print(f"\nbatch {args.batch_size} x {args.seq_len} tokens, {args.threads} threads, MFU against "
          f"{args.peak_gflops:.0f} GFLOP/s (fp32 peak of {args.threads} cores); median of {args.repeats} x "
          f"{args.steps} steps taken in turns\n")
    print("| model | side | precision | tokens/s | ms/step | MFU | peak RSS | data | first step | load (1 min) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['model']} | {r['side']} | {r['setup']} | {r['tokens_per_s']:,.0f} | {r['ms_per_step']:,.0f} | "
              f"{100 * r['mfu']:.1f}% | {r['peak_rss_mb'] / 1024:.1f} GB | {100 * r['data_share']:.2f}% | "
              f"{r['first_step_s']:.1f} s | {r['load'][0].split()[0]} -> {r['load'][-1].split()[0]} |")
    print()
    for model in dict.fromkeys(r["model"] for r in results):
        rows = {(r["side"], r["precision"]): r for r in results if r["model"] == model}
        reference = rows.get(("pytorch", "fp32"))
        if reference:
            print(f"{model}: " + ", ".join(f"gpt_exp {p} {rows[('gpt_exp', p)]['tokens_per_s'] / reference['tokens_per_s']:.2f}x"
                                           for s, p in rows if s == "gpt_exp") + " the tokens/s of PyTorch fp32 eager")
    print("versions: " + "; ".join(sorted({r["version"] for r in results})))
    for r in results:
        if r["profile"]:
            print(f"\nwhere gpt_exp's step goes ({r['model']}, {r['setup']}; MindSpore profiler, per step):")
            for op, count, ms, share in r["profile"]:
                print(f"  {op:28s} {count:5d} calls {ms:9.1f} ms {100 * share:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gpt2-tiny", "gpt2"], choices=sorted(MODELS))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=sorted(PRECISIONS))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per turn")
    parser.add_argument("--repeats", type=int, default=3, help="turns per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the first (with 2, gpt_exp's "
                        "first timed turn was still ~25%% slow on GPT-2 small)")
    parser.add_argument("--peak-gflops", type=float, default=None,
                        help="the CPU's fp32 peak for MFU (default: threads x 2.6 GHz x 64 FLOP/cycle, AVX-512 FMA)")
    parser.add_argument("--torch-python", default=None, help="a Python with torch + transformers (default: "
                        "$GPT_EXP_BENCH_PYTHON, this Python, or ../bench-venv)")
    parser.add_argument("--no-torch", action="store_true", help="time gpt_exp alone")
    parser.add_argument("--profile", default=None, help="also profile two gpt_exp steps with MindSpore's profiler here")
    parser.add_argument("--jit-level", default=None, help="mindspore.set_context(jit_config={'jit_level': ...})")
    parser.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE", "default"],
                        help="OMP_WAIT_POLICY of both workers. PASSIVE (default): on a shared machine PyTorch's "
                             "spinning OpenMP threads lost 3-5x per step (gpt2-tiny: ~5 s vs ~1.6 s at load 9); "
                             "MindSpore's own thread pool does not use OpenMP")
    parser.add_argument("--json", default=None, help="write the results here too")
    parser.add_argument("--log-dir", default=None, help="the workers' logs (default: a temporary directory)")
    parser.add_argument("--worker", choices=["mindspore", "torch", "gpt_exp", "pytorch"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        sys.path.insert(0, str(ROOT))
        return (mindspore_worker if args.worker in ("mindspore", "gpt_exp") else torch_worker)(args)

    import tempfile

    args.peak_gflops = args.peak_gflops or args.threads * 2.6 * 64
    args.log_dir = args.log_dir or tempfile.mkdtemp(prefix="gpt_exp_bench_")
    Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    python_for_torch = None if args.no_torch else torch_python(args)
    if not args.no_torch and not python_for_torch:
        sys.exit("no Python with torch and transformers found: pip install -e '.[bench]', give --torch-python, "
                 "or run with --no-torch")
    print(f"load average {load_average()}; PyTorch side: {python_for_torch or 'none'}; OMP_WAIT_POLICY "
          f"{args.omp_wait_policy}; worker logs in {args.log_dir}")
    results = []
    for model in args.models:
        for precision in args.precisions:
            args.model_now, args.precision_now = model, precision
            results += measure(args, python_for_torch)
    print_table(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
