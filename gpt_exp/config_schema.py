"""The schema of every config key: its type, its allowed range and a one-line meaning.

Each config group has a dataclass here; `gpt_exp.config_check.check_settings` walks the composed
config against them before any work starts. Declarations read like a table:

    lr: float = setting(1e-3, "peak learning rate", gt=0, max=1)

Why an explicit walk and not Hydra's structured configs in each YAML's defaults list (measured with
hydra-core 1.3.8): a schema in the defaults list types the values, but Hydra applies `+key=value`
with force_add, so `+optimizer.typo=1` and `+typo=1` still pass silently, and OmegaConf has no
ranges (`optimizer.lr=-1` passes). Groups whose keys depend on the option (task, tokenizer,
distributed) are picked by `_target_`. A key declared here but absent from the YAML is fine (its
code has a default); a key in the YAML but not here is refused, so a typo never runs.

This module imports nothing heavy (no MindSpore, no datasets): the check runs in well under a second.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

REQUIRED = dataclasses.MISSING  # a key the user must set (`???` in the YAML); kw_only lets it follow defaults


def setting(default: Any, help: str, *, min: float | None = None, max: float | None = None,
            gt: float | None = None, lt: float | None = None, choices: tuple | None = None,
            length: int | None = None, items: dict | None = None, casefold: bool = False,
            select: dict | None = None) -> Any:
    """One config key. min/max are inclusive, gt/lt exclusive; choices lists the allowed values;
    length fixes a list's length and items gives the rule of each list item (a dict of these keywords);
    casefold compares choices ignoring case; select picks the node's schema by its `_target_`."""
    rules = {"help": help, "min": min, "max": max, "gt": gt, "lt": lt, "choices": choices, "length": length,
             "items": items, "casefold": casefold, "select": select}
    metadata = {k: v for k, v in rules.items() if v is not None and v is not False}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ------------------------------------------------------------------------------------- paths, data

@dataclass(kw_only=True)
class PathsConfig:
    cache_dir: str = setting(REQUIRED, "where data, tokenizers and downloaded packages are cached (shared by runs)")
    output_dir: Optional[str] = setting(None, "the run directory; null: Hydra's outputs/DATE/TIME_NAME")
    overwrite: bool = setting(False, "delete an earlier run in the run directory first (else it is refused)")


@dataclass(kw_only=True)
class DataFiles:
    train: str = setting(REQUIRED, "your training file (.txt: one document per file; .jsonl: one record a line)")
    validation: Optional[str] = setting(None, "validation file; null: 5% carved off train")
    test: Optional[str] = setting(None, "test file; null: 5% carved off train")


@dataclass(kw_only=True)
class DataConfig:
    """Every data source (built-in, your files, a hub id) has these keys; the *_field keys name the record
    fields a task reads, so each source declares only the ones its records have."""
    name: Optional[str] = setting(None, "a built-in dataset (gpt_exp/data/sources/), fetched into the cache")
    files: Optional[DataFiles] = setting(None, "your own files instead of a built-in dataset")
    hub_id: Optional[str] = setting(None, "a `datasets` hub id instead (needs a network)")
    hub_config: Optional[str] = setting(None, "the hub dataset's configuration name")
    max_train_samples: Optional[int] = setting(None, "cap on the training records (quick runs); null: all", min=1)
    max_eval_samples: Optional[int] = setting(None, "cap on the validation and test records; null: all", min=1)
    text_field: Optional[str] = setting(None, "the record field holding the text (lm, classification)")
    label_field: Optional[str] = setting(None, "the record field holding the label (classification, entailment, "
                                               "multiple_choice: the index of the right choice)")
    premise_field: Optional[str] = setting(None, "entailment: the field holding the premise")
    hypothesis_field: Optional[str] = setting(None, "entailment: the field holding the hypothesis")
    context_field: Optional[str] = setting(None, "multiple_choice: the field holding the question / context")
    choices_field: Optional[str] = setting(None, "multiple_choice: the field holding the list of answers")
    text_a_field: Optional[str] = setting(None, "similarity: the field holding the first sentence")
    text_b_field: Optional[str] = setting(None, "similarity: the field holding the second sentence")
    score_field: Optional[str] = setting(None, "similarity: the field holding the score")
    score_range: Optional[List[float]] = setting(None, "similarity: [lowest, highest] possible score", length=2)
    article_field: Optional[str] = setting(None, "summarization: the field holding the article")
    summary_field: Optional[str] = setting(None, "summarization: the field holding the reference summary")
    rouge_tokens: Optional[str] = setting(None, "summarization: ROUGE counts characters (Chinese) or words (English)",
                                          choices=("char", "word"))


# ------------------------------------------------------------------------------------- tokenizer, truncation

@dataclass(kw_only=True)
class TokenizerBase:
    _target_: str = setting(REQUIRED, "the function that builds the tokenizer (gpt_exp/tokenizers.py)")
    _partial_: bool = setting(True, "Hydra: the runner calls it with the cache and the corpus")


@dataclass(kw_only=True)
class CorpusBpeTokenizer(TokenizerBase):
    vocab_size: int = setting(4096, "tokens of the BPE learned from the training split", min=64, max=1_000_000)
    min_frequency: int = setting(2, "a pair must occur this often to be merged", min=1)
    lowercase: bool = setting(True, "lower-case the text first, as GPT-1 did")


@dataclass(kw_only=True)
class ByteBpeTokenizer(TokenizerBase):
    vocab_size: int = setting(4096, "tokens of the byte-level BPE learned from the training split (257: bytes only, "
                                    "a character-level model)", min=257, max=1_000_000)
    min_frequency: int = setting(2, "a pair must occur this often to be merged", min=1)


@dataclass(kw_only=True)
class HubTokenizer(TokenizerBase):
    name: str = setting(REQUIRED, "a hub tokenizer name, e.g. gpt2 (needs a network)")


@dataclass(kw_only=True)
class SavedTokenizer(TokenizerBase):
    path: str = setting(REQUIRED, "a gpt_exp run directory (or a folder with tokenizer.json + special_tokens.json)")


TOKENIZERS = {
    "gpt_exp.tokenizers.corpus_bpe": CorpusBpeTokenizer,
    "gpt_exp.tokenizers.byte_bpe": ByteBpeTokenizer,
    "gpt_exp.tokenizers.gpt2_bpe": TokenizerBase,
    "gpt_exp.tokenizers.bert_chinese": TokenizerBase,
    "gpt_exp.tokenizers.from_hub": HubTokenizer,
    "gpt_exp.tokenizers.saved": SavedTokenizer,
}


@dataclass(kw_only=True)
class TruncationConfig:
    strategy: str = setting("head", "which part of a too-long text is kept", choices=("head", "tail", "head_tail"))
    head_fraction: float = setting(0.5, "head_tail: the share of the budget given to the head", min=0, max=1)
    pairs: str = setting("longest_first", "for two texts, which gives up tokens",
                         choices=("longest_first", "first", "second"))


# ------------------------------------------------------------------------------------- tasks

@dataclass(kw_only=True)
class TaskBase:
    _target_: str = setting(REQUIRED, "the task class (gpt_exp/tasks/)")
    name: str = setting(REQUIRED, "the task's short name (run names, W&B job type)")
    max_seq_len: int = setting(128, "tokens per sequence; at most model.n_positions", min=1)


@dataclass(kw_only=True)
class LanguageModelingTask(TaskBase):
    sample_prompts: List[str] = setting([], "prompts completed at the end of the run")
    sample_max_new_tokens: int = setting(60, "tokens generated per sample", min=0)
    sample_temperature: float = setting(0.8, "sampling temperature", gt=0)
    sample_top_k: int = setting(40, "sample among the k likeliest tokens; 0: all", min=0)
    text_field: str = setting("text", "the record field that holds the text (from data.text_field)")


@dataclass(kw_only=True)
class SpecialTokens:
    start: str = setting("<|start|>", "the token that opens every sequence")
    delimiter: str = setting("<|delimiter|>", "the token between the two texts of a pair")
    extract: str = setting("<|extract|>", "the last token, whose state the head reads")


@dataclass(kw_only=True)
class FinetuneTask(TaskBase):
    """GPT-1's fine-tuning keys, shared by classification, entailment, similarity and multiple choice."""
    max_seq_len: int = setting(128, "tokens per sequence, special tokens included; at most model.n_positions", min=4)
    lm_coef: float = setting(0.5, "lambda of the auxiliary LM loss L3 = L2 + lambda * L1 (0: off)", min=0, max=100)
    head_dropout: float = setting(0.1, "dropout on the extract state before the head", min=0, lt=1)
    special_tokens: SpecialTokens = setting(SpecialTokens(), "the template's tokens, added to the tokenizer")
    pad_to_multiple_of: int = setting(8, "sequences are padded to the longest, rounded up to this", min=1)
    show_predictions: int = setting(20, "test samples written to predictions.jsonl at the end", min=0)


@dataclass(kw_only=True)
class ClassificationTask(FinetuneTask):
    label_names: Optional[List[str]] = setting(None, "class names; null: the dataset's or the labels' own")
    text_field: str = setting("text", "the record field with the text (from data.text_field)")
    label_field: str = setting("label", "the record field with the label (from data.label_field)")


@dataclass(kw_only=True)
class EntailmentTask(FinetuneTask):
    label_names: Optional[List[str]] = setting(None, "class names; null: the dataset's or the labels' own")
    premise_field: str = setting("premise", "the record field with the premise (from data.premise_field)")
    hypothesis_field: str = setting("hypothesis", "the record field with the hypothesis (from data.hypothesis_field)")
    label_field: str = setting("label", "the record field with the label (from data.label_field)")


@dataclass(kw_only=True)
class SimilarityTask(FinetuneTask):
    score_range: List[float] = setting([0.0, 5.0], "[lowest, highest] score; the head regresses them rescaled to 0..1",
                                       length=2)
    both_orders: bool = setting(True, "read both orders of a pair (GPT-1); false: half the compute")
    text_a_field: str = setting("text_a", "the record field with the first sentence")
    text_b_field: str = setting("text_b", "the record field with the second sentence")
    score_field: str = setting("score", "the record field with the score")


@dataclass(kw_only=True)
class MultipleChoiceTask(FinetuneTask):
    context_field: str = setting("context", "the record field with the question / context")
    choices_field: str = setting("choices", "the record field with the list of answers (at least 2)")
    label_field: str = setting("label", "the record field with the index of the right answer")


@dataclass(kw_only=True)
class Generation:
    strategy: str = setting("greedy", "how summaries are decoded", choices=("greedy", "beam", "sample"))
    max_new_tokens: int = setting(32, "the longest summary", min=1)
    min_new_tokens: int = setting(0, "eos is barred before this many tokens; at most max_new_tokens", min=0)
    suppress_special: bool = setting(True, "never emit [UNK] / [PAD] / [CLS]")
    num_beams: int = setting(4, "beam only: beams kept", min=1)
    length_penalty: float = setting(1.0, "beam only: score = log-prob / length ** length_penalty")
    temperature: float = setting(1.0, "sample only: softmax temperature", gt=0)
    top_k: int = setting(0, "sample only: sample among the k likeliest; 0: off", min=0)
    top_p: float = setting(1.0, "sample only: nucleus mass; 1: off", gt=0, max=1)
    seed: Optional[int] = setting(0, "sample only: the sampling seed", min=0)
    batch_size: int = setting(16, "prompts decoded together", min=1)
    # announced by the h_metrics helper (decoding options); declared here so the check accepts them once merged
    repetition_penalty: float = setting(1.0, "divide the logits of tokens already generated by this; 1: off", gt=0)
    no_repeat_ngram_size: int = setting(0, "never repeat an n-gram of this size; 0: off", min=0)


@dataclass(kw_only=True)
class SummarizationTask(TaskBase):
    max_seq_len: int = setting(256, "article + summary + special tokens; at most model.n_positions", min=4)
    bos: bool = setting(True, "start with the tokenizer's bos token ([CLS])")
    prompt: str = setting("", "text between article and summary, e.g. ' TL;DR:' (zero-shot)")
    separator: bool = setting(True, "put the tokenizer's sep token between article and summary")
    loss_on: str = setting("summary", "summary: learn the summary only; all: every real token", choices=("summary", "all"))
    generation: Generation = setting(Generation(), "how summaries are decoded for ROUGE")
    val_rouge_samples: int = setting(32, "validation pairs generated and scored at every evaluation", min=1)
    test_rouge_samples: Optional[int] = setting(None, "test pairs scored at the end; null: the whole split", min=1)
    table_rows: int = setting(200, "rows of the W&B prediction tables", min=0)
    require_init_from: bool = setting(False, "refuse to start from random weights (zero-shot / fine-tune presets)")
    init_from: Optional[str] = setting(None, "read only: model.init_from, for require_init_from")


TASKS = {
    "gpt_exp.tasks.lm.LanguageModelingTask": LanguageModelingTask,
    "gpt_exp.tasks.classification.ClassificationTask": ClassificationTask,
    "gpt_exp.tasks.entailment.EntailmentTask": EntailmentTask,
    "gpt_exp.tasks.similarity.SimilarityTask": SimilarityTask,
    "gpt_exp.tasks.multiple_choice.MultipleChoiceTask": MultipleChoiceTask,
    "gpt_exp.tasks.summarization.SummarizationTask": SummarizationTask,
}


# ------------------------------------------------------------------------------------- model, device

@dataclass(kw_only=True)
class ModelConfig:
    name: str = setting(REQUIRED, "the size's name (run names)")
    arch: str = setting("gpt2", "gpt2: pre-LayerNorm blocks and ln_f; gpt1: post-LayerNorm", choices=("gpt1", "gpt2"))
    n_layer: int = setting(REQUIRED, "transformer blocks", min=1, max=1024)
    n_head: int = setting(REQUIRED, "attention heads; must divide n_embd", min=1)
    n_embd: int = setting(REQUIRED, "width of the residual stream", min=1)
    n_positions: int = setting(REQUIRED, "the longest sequence the position embedding holds", min=1)
    dropout: float = setting(0.1, "embedding, attention and residual dropout", min=0, lt=1)
    layer_norm_epsilon: float = setting(1e-5, "LayerNorm's epsilon", gt=0, max=1)
    init_from: Optional[str] = setting(None, "initial weights: null (scratch), an HF-format folder, a hub id or a run")


@dataclass(kw_only=True)
class DeviceConfig:
    name: str = setting(REQUIRED, "the option's name")
    target: str = setting("auto", "where to run", choices=("CPU", "GPU", "Ascend", "auto"), casefold=True)
    device_id: int = setting(0, "which device of the machine", min=0)
    num_threads: Optional[int] = setting(None, "MindSpore runtime threads (CPU); null: MindSpore's default", min=1)


@dataclass(kw_only=True)
class DistributedBase:
    _target_: str = setting(REQUIRED, "the process group class (gpt_exp/backend/distributed.py)")


@dataclass(kw_only=True)
class DataParallelConfig(DistributedBase):
    backend: Optional[str] = setting(None, "communication backend; null: the device's default",
                                     choices=("hccl", "nccl", "mccl"))


DISTRIBUTED = {
    "gpt_exp.backend.distributed.SingleProcess": DistributedBase,
    "gpt_exp.backend.distributed.DataParallel": DataParallelConfig,
}


@dataclass(kw_only=True)
class LossScale:
    init: float = setting(65536, "the first loss scale", min=1)
    factor: int = setting(2, "divide on overflow / multiply after `window` good steps", min=1)
    window: int = setting(1000, "finite steps in a row before the scale grows", min=1)


@dataclass(kw_only=True)
class PrecisionConfig:
    name: str = setting(REQUIRED, "the option's name")
    dtype: str = setting("float32", "the low-precision type amp casts to", choices=("float32", "float16", "bfloat16"))
    amp_level: str = setting("O0", "O0: no amp; O1 listed ops; O2 the network; O3 everything; auto: MindSpore's lists",
                             choices=("O0", "O1", "O2", "O3", "auto"))
    matmul_dtype: Optional[str] = setting(None, "bfloat16: float32 tensors, bf16 matrix products (CPU)",
                                          choices=("float32", "bfloat16"))
    matmul_kernel: str = setting("auto", "bf16 products: onednn_fpmath (AMX), custom_op (AVX512-BF16 or AMX), "
                                 "auto: probe, fpmath first", choices=("auto", "onednn_fpmath", "custom_op"))
    loss_scale: Optional[LossScale] = setting(None, "dynamic loss scaling; null: none")


# ------------------------------------------------------------------------------------- training

@dataclass(kw_only=True)
class OptimizerConfig:
    name: str = setting("adamw", "the optimizer", choices=("adamw",))
    lr: float = setting(1e-3, "peak learning rate", gt=0, max=1)
    betas: List[float] = setting([0.9, 0.95], "Adam's beta1, beta2", length=2, items={"min": 0, "lt": 1})
    eps: float = setting(1e-8, "Adam's epsilon", gt=0, max=1)
    weight_decay: float = setting(0.1, "decoupled weight decay of the matrices (biases, LayerNorm: none)", min=0, max=10)


@dataclass(kw_only=True)
class SchedulerConfig:
    name: str = setting("cosine", "the decay after warmup", choices=("cosine", "linear", "constant"))
    warmup_steps: int = setting(0, "linear warmup steps", min=0)
    min_lr_ratio: float = setting(0.1, "the decay ends at min_lr_ratio * lr", min=0, max=1)


@dataclass(kw_only=True)
class TrainerConfig:
    batch_size: int = setting(16, "sequences per micro-batch", min=1)
    grad_accum_steps: int = setting(1, "micro-batches per optimizer step", min=1)
    max_steps: int = setting(300, "optimizer steps (0: evaluate only)", min=0)
    max_epochs: Optional[int] = setting(None, "stop after this many epochs if earlier; null: no limit", min=1)
    max_grad_norm: Optional[float] = setting(1.0, "clip the global gradient norm; null: no clipping", gt=0)
    eval_interval: int = setting(100, "optimizer steps between evaluations", min=1)
    eval_batches: Optional[int] = setting(20, "validation batches per evaluation; null: the whole split", min=1)
    log_interval: int = setting(10, "optimizer steps between log lines", min=1)
    checkpoint_interval: int = setting(100, "steps between checkpoints (the last step is always saved)", min=1)
    compile: bool = setting(True, "run the train step in graph mode (mindspore.jit)")
    compile_cache: bool = setting(True, "reuse the train step's compiled graph from paths.cache_dir/compile "
                                        "when config, vocabulary, shapes and code are the same (single process)")
    resume: Optional[str] = setting(None, "a run directory to continue from its last checkpoint")
    # announced by other helpers (resume, reproducibility); declared so the check accepts them once merged
    keep_checkpoints: int = setting(2, "step checkpoints kept besides best.ckpt", min=1)
    test_batches: Optional[int] = setting(None, "test batches of the final evaluation; null: all", min=1)
    deterministic: bool = setting(True, "deterministic MindSpore kernels (same seed, same numbers)")


@dataclass(kw_only=True)
class LoggerConfig:
    mode: str = setting("offline", "W&B: offline (no account), online, or disabled", choices=("offline", "online", "disabled"))
    project: str = setting("gpt_exp", "the W&B project")
    entity: Optional[str] = setting(None, "the W&B user or team; null: your default")
    group: Optional[str] = setting(None, "the W&B group; null: the multirun's date and time (its sweep directory)")
    tags: List[str] = setting([], "W&B tags")
    notes: Optional[str] = setting(None, "W&B notes")
    # a W&B that cannot be reached costs at most these two bounds (gpt_exp/tracking.py)
    init_timeout: float = setting(15.0, "seconds to wait for W&B to start before training on without it", gt=0)
    finish_timeout: float = setting(30.0, "seconds to wait for W&B to finish uploading", gt=0)


@dataclass(kw_only=True)
class AblationInit:
    pretrained: Optional[str] = setting(None, "the pre-training run the pretrained arm starts from")
    scratch: Optional[str] = setting(None, "null: random weights")


@dataclass(kw_only=True)
class AblationConfig:
    pretrained_run: str = setting(REQUIRED, "the run made by experiment=gpt1_pretrain")
    arm: str = setting("pretrained", "which initial weights", choices=("pretrained", "scratch"))
    init_from: AblationInit = setting(AblationInit(), "model.init_from of each arm")


# ------------------------------------------------------------------------------------- the root

@dataclass(kw_only=True)
class RootConfig:
    run_name: str = setting(REQUIRED, "a short human name of the run (run directory, W&B run)")
    seed: int = setting(1337, "seeds MindSpore, numpy and the data order", min=0, max=2**32 - 1)
    paths: PathsConfig = setting(REQUIRED, "the paths group")
    data: DataConfig = setting(REQUIRED, "the data group")
    tokenizer: TokenizerBase = setting(REQUIRED, "the tokenizer group", select=TOKENIZERS)
    truncation: TruncationConfig = setting(REQUIRED, "the truncation group")
    task: TaskBase = setting(REQUIRED, "the task group", select=TASKS)
    model: ModelConfig = setting(REQUIRED, "the model group")
    device: DeviceConfig = setting(REQUIRED, "the device group")
    distributed: DistributedBase = setting(REQUIRED, "the distributed group", select=DISTRIBUTED)
    precision: PrecisionConfig = setting(REQUIRED, "the precision group")
    optimizer: OptimizerConfig = setting(REQUIRED, "the optimizer group")
    scheduler: SchedulerConfig = setting(REQUIRED, "the scheduler group")
    trainer: TrainerConfig = setting(REQUIRED, "the trainer group")
    logger: LoggerConfig = setting(REQUIRED, "the logger group")
    ablation: Optional[AblationConfig] = setting(None, "experiment=gpt1_ablation: which arm of GPT-1's ablation")


def schema_fields(schema: type) -> Dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(schema)}
