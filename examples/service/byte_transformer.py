"""A byte-level causal transformer for the run service's challenge (docs/SERVICE.md, "The challenge contract").

The model reads bytes (ids 0..255, plus BOS = 256) and predicts the next byte at every position:

    embedding 257 -> D  ->  L x [ RMSNorm -> causal self-attention (rotary positions, SDPA is_causal)  + residual
                                  RMSNorm -> MLP (D -> 4D -> D, GELU)                                   + residual ]
                        ->  RMSNorm -> linear head D -> 257 (tied to the embedding)

Causal by construction (SDPA's causal mask; every other layer works per position), no data-dependent Python
control flow, so `torch.export.export(model, (x,), strict=False)` captures it for the service's scoring. Training:
AdamW, a short linear warmup, then a cosine decay that reaches its floor when the wall-clock budget
(prepare.TIME_BUDGET seconds) runs out; then one call to prepare.evaluate_bpb and one JSON line.

Submit it to the run service:

    python bench/service_client.py --token pgs_... examples/service/byte_transformer.py

Run it locally (the harness's local mode; the dataset is built once with `python -m tools.service.dataset`):

    PYTHONPATH=tools/service/harness python examples/service/byte_transformer.py
    PG_TIME_BUDGET=30 TORCH_SEED=1 PYTHONPATH=tools/service/harness python examples/service/byte_transformer.py

CPU only; TORCH_SEED (default 0) seeds the initialization and the data order.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass

import prepare
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class Config:
    width: int = 128
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    seq_len: int = prepare.MAX_SEQ_LEN
    vocab_size: int = prepare.VOCAB_SIZE


# Training, sized for the default 180 s budget on a 2-core CPU.
BATCH_SIZE = 16
EVAL_BATCH_SIZE = 64
PEAK_LR = 4e-3
MIN_LR_FRACTION = 0.05  # the cosine's floor, reached when the budget ends
WARMUP_STEPS = 30
WEIGHT_DECAY = 0.05
GRAD_CLIP = 1.0


class RMSNorm(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, eps=1e-6)


def rotary_tables(seq_len: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [seq_len, head_dim / 2] of the rotary position angles."""
    frequencies = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), frequencies)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of x [B, heads, T, head_dim]: each pair of halves turned by its position's angle."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.heads = config.heads
        self.head_dim = config.width // config.heads
        self.qkv = nn.Linear(config.width, 3 * config.width, bias=False)
        self.out = nn.Linear(config.width, config.width, bias=False)
        cos, sin = rotary_tables(config.seq_len, self.head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = self.cos[:length], self.sin[:length]
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.attention_norm = RMSNorm(config.width)
        self.attention = Attention(config)
        self.mlp_norm = RMSNorm(config.width)
        self.mlp = nn.Sequential(nn.Linear(config.width, config.mlp_ratio * config.width, bias=False), nn.GELU(),
                                 nn.Linear(config.mlp_ratio * config.width, config.width, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class ByteTransformer(nn.Module):
    """int64 token ids [B, T] (T <= seq_len) -> logits [B, T, vocab_size]; position t sees x[:, :t+1] only."""

    def __init__(self, config: Config = Config()):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = RMSNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab_size, bias=False)
        self.head.weight = self.embedding.weight  # tied
        self.apply(self._init)
        for block in self.blocks:  # residual branches start small, scaled by depth
            for projection in (block.attention.out, block.mlp[2]):
                nn.init.normal_(projection.weight, std=0.02 / math.sqrt(2 * config.layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embedding(x)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """AdamW; weight decay on the matrices only (not on norms; the tied embedding counts once)."""
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": matrices, "weight_decay": WEIGHT_DECAY}, {"params": vectors, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=PEAK_LR, betas=(0.9, 0.95), eps=1e-8)


def learning_rate(step: int, progress: float) -> float:
    """Linear warmup over the first steps, then cosine from PEAK_LR down to its floor at the end of the budget."""
    warmup = min(1.0, (step + 1) / WARMUP_STEPS)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return PEAK_LR * warmup * (MIN_LR_FRACTION + (1.0 - MIN_LR_FRACTION) * cosine)


def main() -> None:
    seed = int(os.environ.get("TORCH_SEED", "0"))
    torch.manual_seed(seed)
    model = ByteTransformer(Config())
    num_params = sum(p.numel() for p in model.parameters())
    print(f"byte transformer: {num_params:,} parameters, budget {prepare.TIME_BUDGET} s", file=sys.stderr, flush=True)
    optimizer = make_optimizer(model)
    loader = prepare.make_dataloader(BATCH_SIZE, prepare.MAX_SEQ_LEN, "train", "cpu")
    model.train()
    start, steps = time.time(), 0
    while (elapsed := time.time() - start) < prepare.TIME_BUDGET:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(steps, elapsed / prepare.TIME_BUDGET)
        x, y = next(loader)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        steps += 1
        if steps % 100 == 0:
            print(f"step {steps}  {elapsed:.0f} s  loss {loss.item() / math.log(2):.3f} bits/byte", file=sys.stderr,
                  flush=True)
    training_time = time.time() - start
    val_bpb = prepare.evaluate_bpb(model, EVAL_BATCH_SIZE, "cpu")
    print(json.dumps({"val_bpb": val_bpb, "total_steps": steps, "training_time_secs": round(training_time, 2),
                      "num_params": num_params, "seed": seed}), flush=True)


if __name__ == "__main__":
    main()
