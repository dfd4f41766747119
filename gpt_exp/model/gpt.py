"""GPT-1 and GPT-2 as plain MindSpore Cells.

Parameter names follow Hugging Face's `OpenAIGPTLMHeadModel` / `GPT2LMHeadModel` one to one
(`transformer.h.0.attn.c_attn.weight`, ...), with HF's Conv1D layout (weight [in, out]), so HF and
MindNLP checkpoints load without renaming or transposing (see hf_weights.py).

Mixed precision is applied from outside with `mindspore.amp`: matrix products are Primitive
attributes (`ops.MatMul`, `ops.BatchMatMul`), which O1 runs in fp16, while LayerNorm and the
attention softmax always compute in float32, whatever dtype reaches them (O2/O3 cast everything).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal, initializer
from mindspore.common.seed import _get_graph_seed

ARCHS = ("gpt1", "gpt2")

# Added to the attention scores of masked positions. It must survive a cast to fp16 (max 65504)
# even when the causal and the padding mask add up (-2e4), and exp(-1e4) is exactly 0 in float32.
MASK_VALUE = -1e4


@dataclass
class GPTConfig:
    arch: str  # "gpt1" (post-LN OpenAI GPT) or "gpt2" (pre-LN + final ln_f)
    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    dropout: float = 0.1  # embedding, attention and residual dropout
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"GPTConfig.arch must be one of {ARCHS}, got {self.arch!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")


def _zeros(*shape) -> Parameter:
    return Parameter(initializer("zeros", shape, ms.float32))


def _normal(std: float, *shape) -> Parameter:
    return Parameter(initializer(Normal(sigma=std), shape, ms.float32))


def _residual_std(config: GPTConfig) -> float:
    # GPT-2: scale the projections that write into the residual stream by 1/sqrt(#residual layers)
    return 0.02 / math.sqrt(2 * config.n_layer)


class Embedding(nn.Cell):
    """A lookup table whose parameter is called `weight`, as in HF (nn.Embedding says embedding_table)."""

    def __init__(self, num_embeddings: int, dim: int):
        super().__init__()
        self.weight = _normal(0.02, num_embeddings, dim)

    def construct(self, ids):
        return ops.gather(self.weight, ids, 0)


class LayerNorm(nn.Cell):
    """LayerNorm with HF's `weight`/`bias` names (nn.LayerNorm says gamma/beta), computed in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = Parameter(initializer("ones", (dim,), ms.float32))
        self.bias = _zeros(dim)
        self.layer_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)

    def construct(self, x):
        y, _, _ = self.layer_norm(x.astype(ms.float32), self.weight.astype(ms.float32),
                                  self.bias.astype(ms.float32))
        return y.astype(x.dtype)


class ProductWithTransposedWeight(nn.Cell):
    """x @ w for w stored [in, out], computed as x @ (w^T)^T, with a backward that keeps no transposed copy.

    Every product here has its right operand stored [N, K] (oneDNN's fast form on a CPU, see Conv1D):
    forward x @ (w^T)^T, input gradient dy @ w^T, weight gradient (dy^T @ x)^T. Written by hand because
    autodiff would keep each layer's w^T alive until the backward pass (+0.6 GB on GPT-2 small).
    """

    def __init__(self):
        super().__init__()
        self.matmul_nt = ops.MatMul(transpose_b=True)
        self.matmul_tn = ops.MatMul(transpose_a=True)

    def construct(self, x, w):
        return self.matmul_nt(x, w.transpose(1, 0))

    def bprop(self, x, w, out, dout):
        return self.matmul_nt(dout, w), self.matmul_tn(dout, x).transpose(1, 0)


class Conv1D(nn.Cell):
    """HF's Conv1D: a dense layer that stores its weight as [in, out].

    `transposed_product` computes the same x @ W with W's transpose as the stored operand
    (ProductWithTransposedWeight). MindSpore 2.10's CPU MatMul (oneDNN's brg_matmul on plain layouts) runs
    a product whose right operand is a row-major [K, 3072] at about a third of the speed of the same
    product with that operand stored [3072, K]; that hits the MLP's widening c_fc twice a step (forward,
    and its weight gradient). precision.choose_cpu_products turns it on where it was measured to pay
    (fp32 on a CPU; with bf16 products it made the step slower). The weight keeps HF's layout either way.
    `bf16_product`, when set (precision.choose_cpu_products), computes x @ W in bf16 through a custom op.
    """

    def __init__(self, n_in: int, n_out: int, std: float = 0.02):
        super().__init__()
        self.weight = _normal(std, n_in, n_out)
        self.bias = _zeros(n_out)
        self.matmul = ops.MatMul()
        self.transposed = ProductWithTransposedWeight()
        self.transposed_product = False  # read when the graph is compiled: set it before the first step
        self.bf16_product = None  # likewise: a gpt_exp.backend.bf16_products.Bf16Product on CPUs that use it

    def construct(self, x):
        out_shape = x.shape[:-1] + (self.weight.shape[1],)
        x = x.reshape(-1, x.shape[-1])
        if self.bf16_product is not None:
            y = self.bf16_product(x, self.weight)
        elif self.transposed_product:
            y = self.transposed(x, self.weight)
        else:
            y = self.matmul(x, self.weight)
        return (y + self.bias).reshape(out_shape)


class SeededDropout(nn.Cell):
    """nn.Dropout whose masks follow from the seed alone: the same seed gives the same masks.

    MindSpore 2.10's CPU Dropout kernel (DropoutCpuKernelMod) draws all elements from one
    std::default_random_engine shared by the parallel tasks of ParallelLaunchAutoSearch, so which
    element gets which draw depends on thread timing and on the task count that search picks: two
    processes with the same seed gave the same masks for ~5 calls, then different ones, and
    `mindspore.set_deterministic(True)` does not change it. UniformReal's kernel draws serially from
    its seeded generator. Seeds come from `mindspore.set_seed` exactly as nn.Dropout takes them.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)
        seed0, seed1 = _get_graph_seed(0, "dropout")
        self.uniform = ops.UniformReal(seed=seed0, seed2=seed1)

    def construct(self, x):
        if not self.training or self.p == 0:
            return x
        keep = (self.uniform(x.shape) >= self.p).astype(x.dtype)
        return x * keep * (1.0 / (1.0 - self.p))


class CausalSelfAttention(nn.Cell):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.scale = 1.0 / math.sqrt(config.n_embd // config.n_head)
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd, std=_residual_std(config))
        self.attn_dropout = SeededDropout(config.dropout)
        self.resid_dropout = SeededDropout(config.dropout)
        self.query_key = ops.BatchMatMul(transpose_b=True)
        self.weigh_values = ops.BatchMatMul()

    def split_heads(self, x):  # [B, T, C] -> [B, n_head, T, C // n_head]
        batch, seq_len, width = x.shape
        return x.reshape(batch, seq_len, self.n_head, width // self.n_head).transpose(0, 2, 1, 3)

    def merge_heads(self, x):  # [B, n_head, T, head_dim] -> [B, T, C]
        batch, n_head, seq_len, head_dim = x.shape
        return x.transpose(0, 2, 1, 3).reshape(batch, seq_len, n_head * head_dim)

    def construct(self, x, additive_mask, past=None):
        """x [B, T, C]; additive_mask [B or 1, 1, T, keys], added to the scores.

        past: None (training, and a prompt's first pass), or this layer's decoding cache (kv_cache.py):
        (keys, values) [B, n_head, slots, head_dim] of the earlier tokens and slot_onehot [1, 1, slots, 1],
        1 at the slot that the one new token (T = 1) fills.
        Returns the output [B, T, C] and the (keys, values) attended to, which a decoding cache keeps.
        """
        q, k, v = ops.split(self.c_attn(x), x.shape[-1], axis=-1)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        if past is not None:
            k, v = self.written_into_slot(past, k, v)
        scores = self.query_key(q * self.scale, k)  # scaling q first keeps fp16 scores in range
        # float32 softmax: in fp16 the exponentials and their sum lose precision (and large scores overflow)
        probs = ops.softmax(scores.astype(ms.float32) + additive_mask.astype(ms.float32), axis=-1)
        probs = self.attn_dropout(probs.astype(v.dtype))
        y = self.merge_heads(self.weigh_values(probs, v))
        return self.resid_dropout(self.c_proj(y)), (k, v)

    def written_into_slot(self, past, k, v):
        """The cached keys and values with the new token's [B, H, 1, D] added into its (zero) slot."""
        cached_k, cached_v, slot_onehot = past
        return cached_k + slot_onehot.astype(k.dtype) * k, cached_v + slot_onehot.astype(v.dtype) * v


# HF's "gelu_new" (GPT-1 and GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written as
# x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)) - the same function, since 0.5 (1 + tanh(z)) = sigmoid(2z).
# MindSpore 2.10's CPU GeLU kernel took ~4x longer forward + backward than these elementwise ops.
# The constants are literals because amp O1 rewrites this code without the module's globals:
# 1.5957691216057308 = 2 sqrt(2/pi), 0.07135481627260025 = 2 sqrt(2/pi) * 0.044715.
def gelu_new(x):
    return x * ops.sigmoid(x * (1.5957691216057308 + 0.07135481627260025 * ops.square(x)))


class MLP(nn.Cell):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = Conv1D(config.n_embd, 4 * config.n_embd)
        self.c_proj = Conv1D(4 * config.n_embd, config.n_embd, std=_residual_std(config))
        self.dropout = SeededDropout(config.dropout)

    def construct(self, x):
        return self.dropout(self.c_proj(gelu_new(self.c_fc(x))))


class PreLNBlock(nn.Cell):
    """GPT-2: LayerNorm on the way into each sublayer; the residual stream itself is never normalized."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def construct(self, x, additive_mask, past=None):
        """Returns the block's output and its attention's (keys, values); `past` as in CausalSelfAttention."""
        attended, present = self.attn(self.ln_1(x), additive_mask, past)
        x = x + attended
        return x + self.mlp(self.ln_2(x)), present


class PostLNBlock(nn.Cell):
    """GPT-1: LayerNorm after each residual addition (the original Transformer's order)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn = CausalSelfAttention(config)
        self.ln_1 = LayerNorm(config.n_embd, config.layer_norm_epsilon)
        self.mlp = MLP(config)
        self.ln_2 = LayerNorm(config.n_embd, config.layer_norm_epsilon)

    def construct(self, x, additive_mask, past=None):
        """Returns the block's output and its attention's (keys, values); `past` as in CausalSelfAttention."""
        attended, present = self.attn(x, additive_mask, past)
        n = self.ln_1(x + attended)
        return self.ln_2(n + self.mlp(n)), present


class GPT2Transformer(nn.Cell):
    """HF's GPT2Model: embeddings, pre-LN blocks and the final ln_f that pre-LN needs."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.wte = Embedding(config.vocab_size, config.n_embd)
        self.wpe = Embedding(config.n_positions, config.n_embd)
        self.drop = SeededDropout(config.dropout)
        self.h = nn.CellList([PreLNBlock(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, config.layer_norm_epsilon)

    def token_embedding(self) -> Embedding:
        return self.wte

    def construct(self, input_ids, position_ids, additive_mask, past=None):
        """The hidden states after ln_f and every layer's (keys, values); `past`: one layer cache per block."""
        x = self.drop(self.wte(input_ids) + self.wpe(position_ids))
        presents = ()
        for block in self.h:  # not enumerate(): amp O1's rewrite then leaves the blocks out (measured)
            x, present = block(x, additive_mask, None if past is None else past[len(presents)])
            presents = presents + (present,)
        return self.ln_f(x), presents


class GPT1Transformer(nn.Cell):
    """HF's OpenAIGPTModel: embeddings and post-LN blocks (no final LayerNorm)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.tokens_embed = Embedding(config.vocab_size, config.n_embd)
        self.positions_embed = Embedding(config.n_positions, config.n_embd)
        self.drop = SeededDropout(config.dropout)
        self.h = nn.CellList([PostLNBlock(config) for _ in range(config.n_layer)])

    def token_embedding(self) -> Embedding:
        return self.tokens_embed

    def construct(self, input_ids, position_ids, additive_mask, past=None):
        """The last block's output and every layer's (keys, values); `past`: one layer cache per block."""
        x = self.drop(self.tokens_embed(input_ids) + self.positions_embed(position_ids))
        presents = ()
        for block in self.h:  # not enumerate(): amp O1's rewrite then leaves the blocks out (measured)
            x, present = block(x, additive_mask, None if past is None else past[len(presents)])
            presents = presents + (present,)
        return x, presents


class GPT(nn.Cell):
    """A GPT language model; `construct` returns hidden states, `lm_logits` projects them onto the vocabulary."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        transformer = GPT2Transformer if config.arch == "gpt2" else GPT1Transformer
        self.transformer = transformer(config)
        # [1, 1, P, P]: 0 on and below the diagonal, MASK_VALUE above (a query never sees later keys)
        causal = np.triu(np.full((config.n_positions,) * 2, MASK_VALUE, np.float32), k=1)
        self.causal_mask = Tensor(causal[None, None])
        self.mask_value = MASK_VALUE  # an attribute, not the global: amp O1 rewrites construct without globals
        self.project_to_vocab = ops.MatMul(transpose_b=True)  # or bf16_products.Bf16ProductWithTransposed

    def construct(self, input_ids, attention_mask=None, position_ids=None):
        """input_ids [B, T] int; attention_mask [B, T], 1 = token, 0 = padding; position_ids [B, T].

        Returns the hidden states [B, T, n_embd] (GPT-2: after ln_f; GPT-1: the last block's output).
        """
        seq_len = input_ids.shape[1]
        if position_ids is None:
            position_ids = ops.arange(seq_len, dtype=ms.int32).expand_dims(0)
        hidden, _ = self.transformer(input_ids, position_ids, self.additive_mask(seq_len, attention_mask))
        return hidden

    def additive_mask(self, seq_len: int, attention_mask=None):
        """[B or 1, 1, T, T], added to the attention scores: MASK_VALUE on later keys and on padding keys."""
        additive_mask = self.causal_mask[:, :, :seq_len, :seq_len]
        if attention_mask is not None:
            padding = (1.0 - attention_mask.astype(ms.float32)) * self.mask_value  # no query attends to padding
            additive_mask = additive_mask + padding[:, None, None, :]
        return additive_mask

    def lm_logits(self, hidden):
        """[B, T, n_embd] -> [B, T, vocab_size] through the token embedding (tied, as in GPT-1/2)."""
        batch, seq_len, width = hidden.shape
        # amp O2/O3 flag this Cell fp16 in place, but only construct's inputs get cast, not this method's
        table = self.transformer.token_embedding().weight.astype(hidden.dtype)
        logits = self.project_to_vocab(hidden.reshape(-1, width), table)
        return logits.reshape(batch, seq_len, -1)

    def resize_token_embeddings(self, new_vocab_size: int) -> None:
        """Grow or shrink the vocabulary, keeping the rows of the tokens that remain.

        Build the optimizer (and any jit-compiled step) after this: the parameter is replaced.
        """
        embedding = self.transformer.token_embedding()
        old = embedding.weight.asnumpy()
        new = initializer(Normal(sigma=0.02), (new_vocab_size, old.shape[1]), ms.float32).init_data().asnumpy()
        kept = min(new_vocab_size, old.shape[0])
        new[:kept] = old[:kept]
        embedding.weight = Parameter(Tensor(new), name=embedding.weight.name)
        self.config.vocab_size = new_vocab_size

    def num_parameters(self) -> int:
        return sum(int(p.size) for p in self.get_parameters())
