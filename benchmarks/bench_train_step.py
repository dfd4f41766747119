"""Time gpt_exp's train step against PyTorch + Hugging Face transformers on the same GPT-2, side by side.

    python benchmarks/bench_train_step.py                          # gpt2-tiny and gpt2, fp32 and bf16
    python benchmarks/bench_train_step.py --models gpt2 --precisions fp32 --repeats 5
    python benchmarks/bench_train_step.py --models gpt2 --profile /tmp/ms_profile   # + where MindSpore's time goes

Both sides train the same architecture (the shapes of conf/model/<name>.yaml, GPT-2 BPE vocabulary of
50,257, dropout 0.1, AdamW with decoupled weight decay, gradient clipping at 1.0) on the same batch shape
with the same number of threads:
- gpt_exp: its own train step (gpt_exp/train/step.py) in graph mode, built exactly as the runner builds it,
  fed by the runner's BatchIterator; precision `fp32` or `bf16_matmul` (conf/precision/). Where the CPU
  cannot run `bf16_matmul` (no AMX) the bf16 group times gpt_exp's fp32 step and says so.
- PyTorch: `GPT2LMHeadModel`, `torch.optim.AdamW`, `clip_grad_norm_`, in every setting a user would pick:
  eager and `torch.compile` (the model), each in fp32 and in bf16 autocast (`--torch-modes`, `--precisions`).

Each setting runs in its own worker process, kept alive. The workers warm up one after another (so each
first step - MindSpore's graph compile, torch.compile - is timed alone); then the main process asks them
for timed steps in turns - gpt_exp, PyTorch eager, PyTorch compiled, then backwards - so the load of a
shared machine falls on all alike. The load average is printed with the table.

MFU is against the peak of the instructions each row's matrix products run on: fp32 FMA (AVX-512), the
AVX512-BF16 dot product or AMX, measured on this machine by benchmarks/cpu_peak.py (the clock a VM shows in
/proc/cpuinfo is its nominal one, not the one it runs at; measured before and after each group, the run keeps
the highest clock, since a shared machine can slow one measurement). The CPU model and the ISA oneDNN dispatches to
(MindSpore's own oneDNN; PyTorch's, read from its verbose log) are printed with the table.

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

SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "n_positions", "dropout", "layer_norm_epsilon")
# --precisions name -> (gpt_exp's precision option on the CPU, what the PyTorch side does)
PRECISIONS = {"fp32": ("fp32", "fp32"), "bf16": ("bf16_matmul", "bf16 autocast"), "fp16": ("fp16", "fp16 autocast")}
TORCH_MODES = ("eager", "compile")


def gpt2_models() -> dict[str, dict]:
    """The GPT-2 shapes of conf/model/*.yaml (the PyTorch side builds a GPT2LMHeadModel: arch gpt2 only)."""
    from omegaconf import OmegaConf

    models = {}
    for path in sorted((ROOT / "conf" / "model").glob("*.yaml")):
        config = OmegaConf.load(path)
        if config.get("arch") == "gpt2":
            models[path.stem] = {key: config[key] for key in SHAPE_KEYS}
    return models


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

    from gpt_exp.backend import device as devices
    from gpt_exp.errors import ConfigError
    from gpt_exp.model.build import build_model
    from gpt_exp.backend.cpu_matmul import onednn_isa
    from gpt_exp.backend.precision import (apply_precision, check_precision, choose_cpu_products, cpu_products_kernel,
                                           make_loss_scaler, setup_precision)
    from gpt_exp.tasks.lm import CausalLMNetwork
    from gpt_exp.train.batches import BatchIterator
    from gpt_exp.train.optim import build_optimizer
    from gpt_exp.train.step import make_train_step

    # how bf16_matmul reaches bf16 on this CPU (backend/cpu_matmul.py: bf16_products_route, by probe)
    BF16_ROUTES = {"onednn_fpmath": "bf16 fpmath products", "custom_op": "bf16 products by gpt_exp's custom op"}

    def config(precision: str):
        overrides = [f"model={args.model}", "device=cpu", f"device.num_threads={args.threads}",
                     f"precision={precision}", f"trainer.batch_size={args.batch_size}",
                     f"task.max_seq_len={args.seq_len}"]
        with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
            return compose(config_name="train", overrides=overrides)

    cfg, note = config(PRECISIONS[args.precision][0]), ""
    try:
        check_precision(cfg.precision, "CPU")
    except ConfigError as error:  # bf16_matmul without AMX: time gpt_exp's best setting there, fp32
        cfg, note = config("fp32"), f"{cfg.precision.name} refused on this CPU, fp32 timed instead"
        print(f"{note}: {error}", file=sys.stderr)
    devices.configure(cfg.device, "CPU")
    setup_precision(cfg.precision, "CPU")
    if args.jit_level:
        mindspore.set_context(jit_config={"jit_level": args.jit_level})
    bf16_products = (cfg.precision.get("matmul_dtype") or "float32") == "bfloat16"
    isa = onednn_isa()

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
         version=f"MindSpore {mindspore.__version__}", setup=cfg.precision.name, note=note,
         isa=f"oneDNN (ISA {isa}), " + (BF16_ROUTES[cpu_products_kernel(cfg.precision, "CPU")] if bf16_products
                                        else "fp32 products"),
         product_kind=("amx" if "amx" in isa else "avx512_bf16") if bf16_products else "fp32")
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
    shape = json.loads(args.shape)
    dropout = shape.pop("dropout")
    config = GPT2Config(vocab_size=VOCAB, activation_function="gelu_new", resid_pdrop=dropout, embd_pdrop=dropout,
                        attn_pdrop=dropout, **shape)
    model = GPT2LMHeadModel(config)
    model.train()
    forward = torch.compile(model) if args.torch_mode == "compile" else model
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
            logits = forward(x[:, :-1]).logits
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

    products = torch_products(torch, autocast)  # before the first step: oneDNN prints its ISA once
    start = time.perf_counter()
    run(1)
    compile_s = time.perf_counter() - start
    run(args.warmup)
    setup = f"{'torch.compile' if args.torch_mode == 'compile' else 'eager'} {mode}"
    emit("ready", compile_s=compile_s, params=sum(p.numel() for p in model.parameters()), setup=setup, note="",
         version=f"PyTorch {torch.__version__.split('+')[0]}, transformers {transformers.__version__}, "
                 f"attention {model.config._attn_implementation}", **products)
    serve(run, lambda: None)


def torch_products(torch, autocast) -> dict:
    """What PyTorch's matrix products run on here: its oneDNN's ISA and kernel (bf16), MKL's sgemm (fp32)."""
    a, b = torch.randn(512, 768), torch.randn(3072, 768)

    def product():
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), \
                torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            torch.nn.functional.linear(a, b)

    log = stdout_of(product)
    isa = next((line.split("isa:", 1)[1] for line in log.splitlines() if ",isa:" in line), "")
    kernel = next((line.split(",")[6] for line in log.splitlines() if ",exec,cpu,matmul," in line), "")
    capability = torch.backends.cpu.get_cpu_capability()
    if autocast is None or not kernel:  # fp32 products go to MKL's sgemm, which names no ISA
        return {"isa": f"MKL sgemm, fp32 (PyTorch CPU capability {capability})", "product_kind": "fp32"}
    kind = "amx" if "amx" in kernel else "avx512_bf16" if "bf16" in kernel else "fp32"
    return {"isa": f"oneDNN {kernel} (ISA: {isa})", "product_kind": kind}


def stdout_of(function) -> str:
    """What C code writes to file descriptor 1 while `function` runs (oneDNN's verbose log goes there)."""
    import tempfile

    sys.stdout.flush()
    with tempfile.TemporaryFile(mode="w+") as captured:
        saved = os.dup(1)
        os.dup2(captured.fileno(), 1)
        try:
            function()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        captured.seek(0)
        return captured.read()


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
    """One setting in its own process: `side` gpt_exp or pytorch, `torch_mode` eager / compile for PyTorch."""

    def __init__(self, side: str, python: str, args, torch_mode: str = "eager"):
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
               "GLOG_v": "3", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               # torch.compile's inductor would start a pool of compile workers: no spare cores for them here
               "TORCHINDUCTOR_COMPILE_THREADS": "1"}
        if args.omp_wait_policy != "default":
            env["OMP_WAIT_POLICY"] = args.omp_wait_policy
        extra = (["--profile", args.profile] if args.profile else []) + (
            ["--jit-level", args.jit_level] if args.jit_level else [])
        command = [python, __file__, "--worker", side, "--model", args.model_now, "--precision", args.precision_now,
                   "--shape", json.dumps(args.models_known[args.model_now]), "--torch-mode", torch_mode,
                   "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--threads", str(args.threads),
                   "--warmup", str(args.warmup), *(extra if side == "gpt_exp" else [])]
        self.side = side
        self.name = side if side == "gpt_exp" else f"pytorch-{torch_mode}"
        self.log = open(Path(args.log_dir) / f"{self.name}-{args.model_now}-{args.precision_now}.log", "w")
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
        try:
            probe = subprocess.run([python, "-c", "import torch, transformers"], capture_output=True)
        except OSError:  # no such Python
            continue
        if probe.returncode == 0:
            return os.path.abspath(python)  # absolute: the workers run in --log-dir (not resolve(): a venv's python is a symlink)
    return None


def measure(args, python_for_torch: str | None, peaks: dict) -> list[dict]:
    """One model and precision group: every setting's worker, warmed up one by one, then timed in turns."""
    sides = [("gpt_exp", sys.executable, "eager")] + [("pytorch", python_for_torch, mode) for mode in args.torch_modes
                                                      if python_for_torch]
    workers, ready = [], {}
    for side, python, mode in sides:  # one at a time: each first step (compile) is timed on its own
        worker = Worker(side, python, args, mode)
        ready[worker.name] = worker.receive()
        workers.append(worker)
        print(f"  {args.model_now} {args.precision_now}: {worker.name} ready, {ready[worker.name]['setup']}, "
              f"first step {ready[worker.name]['compile_s']:.1f} s (load {load_average()})", flush=True)
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
        results.append(result_row(args, worker, ready[worker.name], samples[worker.name], finish, loads, peaks))
    return results


def result_row(args, worker, ready: dict, samples: dict, finish: dict, loads: list, peaks: dict) -> dict:
    step_ms = statistics.median(samples["step_ms"])
    flops = flops_per_step(args.models_known[args.model_now], args.batch_size, args.seq_len)
    peak = peak_gflops(args, peaks, ready["product_kind"])  # redone with the best peaks of the run: add_mfu
    return {
        "model": args.model_now, "precision": args.precision_now, "side": worker.side, "setup": ready["setup"],
        "note": ready["note"], "version": ready["version"], "isa": ready["isa"], "product_kind": ready["product_kind"],
        "ms_per_step": step_ms, "tokens_per_s": args.batch_size * args.seq_len / step_ms * 1000,
        "flops_per_step": flops, "mfu": flops / (step_ms / 1000) / (peak * 1e9), "peak_gflops": peak, "peak_rss_mb": finish["peak_rss_mb"],
        "data_share": statistics.median(samples["data_ms"]) / step_ms, "first_step_s": ready["compile_s"],
        "steps": len(samples["step_ms"]), "spread_ms": (min(samples["step_ms"]), max(samples["step_ms"])),
        "last_loss": samples["loss"][-1], "load": loads, "cpu": args.cpu_model, "threads": args.threads,
        "batch": [args.batch_size, args.seq_len], "profile": finish.get("profile")}


def best_peaks(peaks: dict, again: dict) -> dict:
    """The measurement with the higher clock: another session's load can slow a core during one of them."""
    return again if (again.get("clock_ghz") or 0) > (peaks.get("clock_ghz") or 0) else peaks


def add_mfu(results: list[dict], args, peaks: dict) -> None:
    for r in results:
        r["peak_gflops"] = peak_gflops(args, peaks, r["product_kind"])
        r["mfu"] = r["flops_per_step"] / (r["ms_per_step"] / 1000) / (r["peak_gflops"] * 1e9)


def peak_gflops(args, peaks: dict, product_kind: str) -> float:
    """The peak of the instructions a row's products run on; --peak-gflops replaces the fp32 one."""
    from cpu_peak import peak_for

    if product_kind == "fp32" and args.peak_gflops:
        return args.peak_gflops
    return peak_for(product_kind, peaks, args.threads)


def print_table(results: list[dict], args, peaks: dict) -> None:
    print(f"\nCPU: {args.cpu_model}; clock {peaks['clock_ghz'] or 0:.2f} GHz measured (/proc/cpuinfo says "
          f"{args.nominal_ghz or 0:.2f}); peaks for {args.threads} threads: fp32 {peaks['fp32_gflops'] or 0:.0f}, "
          f"AVX512-BF16 {peaks['bf16_gflops'] or 0:.0f}, AMX {peaks['amx_gflops'] or 0:.0f} GFLOP/s ({peaks['how']})")
    print(f"batch {args.batch_size} x {args.seq_len} tokens, {args.threads} threads; median of {args.repeats} x "
          f"{args.steps} steps taken in turns within each model and precision group\n")
    print("| model | side | setup | products on | tokens/s | ms/step | MFU (of peak) | peak RSS | data | first step "
          "| load (1 min) |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['model']} | {r['side']} | {r['setup']} | {r['isa']} | {r['tokens_per_s']:,.0f} | "
              f"{r['ms_per_step']:,.0f} | {100 * r['mfu']:.1f}% ({r['peak_gflops']:,.0f}) | "
              f"{r['peak_rss_mb'] / 1024:.1f} GB | {100 * r['data_share']:.2f}% | {r['first_step_s']:.1f} s | "
              f"{r['load'][0].split()[0]} -> {r['load'][-1].split()[0]} |")
    print()
    for r in results:
        if r["note"]:
            print(f"note: {r['model']} {r['precision']} group: {r['note']}")
    for model in dict.fromkeys(r["model"] for r in results):
        rows = [r for r in results if r["model"] == model]
        best = {side: max((r for r in rows if r["side"] == side), key=lambda r: r["tokens_per_s"], default=None)
                for side in ("gpt_exp", "pytorch")}
        if best["gpt_exp"] and best["pytorch"]:
            ours, peer = best["gpt_exp"], best["pytorch"]
            print(f"{model}: gpt_exp's best ({ours['setup']}, {ours['tokens_per_s']:,.0f} tokens/s) is "
                  f"{ours['tokens_per_s'] / peer['tokens_per_s']:.2f}x PyTorch's best ({peer['setup']}, "
                  f"{peer['tokens_per_s']:,.0f} tokens/s)" + ("" if ours["precision"] == peer["precision"] else
                                                              " (timed in different groups)"))
    print("versions: " + "; ".join(sorted({r["version"] for r in results})))
    for r in results:
        if r["profile"]:
            print(f"\nwhere gpt_exp's step goes ({r['model']}, {r['setup']}; MindSpore profiler, per step):")
            for op, count, ms, share in r["profile"]:
                print(f"  {op:28s} {count:5d} calls {ms:9.1f} ms {100 * share:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gpt2-tiny", "gpt2"],
                        help="names of conf/model/*.yaml with arch gpt2")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=sorted(PRECISIONS),
                        help="groups timed in turns: fp32 (gpt_exp fp32, PyTorch fp32), bf16 (gpt_exp bf16_matmul "
                             "or, where the CPU refuses it, fp32; PyTorch bf16 autocast), fp16")
    parser.add_argument("--torch-modes", nargs="+", default=list(TORCH_MODES), choices=TORCH_MODES,
                        help="PyTorch settings per group: eager, compile (torch.compile of the model)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per turn")
    parser.add_argument("--repeats", type=int, default=3, help="turns per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the first (with 2, gpt_exp's "
                        "first timed turn was still ~25%% slow on GPT-2 small)")
    parser.add_argument("--peak-gflops", type=float, default=None,
                        help="the CPU's fp32 peak for MFU (default: measured, benchmarks/cpu_peak.py)")
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
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--torch-mode", default="eager", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        sys.path.insert(0, str(ROOT))
        return (mindspore_worker if args.worker in ("mindspore", "gpt_exp") else torch_worker)(args)

    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cpu_peak import measure_peaks, nominal_clock_ghz

    from gpt_exp.backend.cpu_matmul import cpu_model

    args.models_known = gpt2_models()
    unknown = sorted(set(args.models) - set(args.models_known))
    if unknown:
        sys.exit(f"--models {' '.join(unknown)}: not a GPT-2 model of conf/model/ ({', '.join(args.models_known)})")
    args.log_dir = args.log_dir or tempfile.mkdtemp(prefix="gpt_exp_bench_")
    Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    python_for_torch = None if args.no_torch else torch_python(args)
    if not args.no_torch and not python_for_torch:
        sys.exit("no Python with torch and transformers found: pip install -e '.[bench]', give --torch-python, "
                 "or run with --no-torch")
    args.cpu_model, args.nominal_ghz = cpu_model(), nominal_clock_ghz()
    peaks = measure_peaks(args.threads)  # first, while no worker runs
    print(f"CPU {args.cpu_model}; load average {load_average()}; PyTorch side: {python_for_torch or 'none'}; "
          f"OMP_WAIT_POLICY {args.omp_wait_policy}; worker logs in {args.log_dir}")
    results = []
    for model in args.models:
        for precision in args.precisions:
            args.model_now, args.precision_now = model, precision
            results += measure(args, python_for_torch, peaks)
            peaks = best_peaks(peaks, measure_peaks(args.threads))  # between groups, no worker runs
    add_mfu(results, args, peaks)
    print_table(results, args, peaks)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
