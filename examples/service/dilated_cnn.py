"""A causal dilated 1-D CNN over bytes (WaveNet-like) for the run service's challenge (docs/SERVICE.md, "The
challenge contract").

The model reads bytes (ids 0..255, plus BOS = 256) and predicts the next byte at every position:

    embedding 257 -> C  ->  for dilation d in 1, 2, 4, ..., 128 (STACKS times):
                                RMSNorm -> causal conv (kernel 2, dilation d: C -> 2C) -> gate tanh(a) * sigmoid(b)
                                        -> 1x1 conv C -> C                                        + residual
                        ->  RMSNorm -> linear head C -> 257

Each convolution sees the current position and the one d steps back; the sequence is padded on the left only, so
position t never sees anything after t. With kernel 2 and dilations 1..128 one stack sees 1 + (1 + 2 + ... + 128)
= 256 positions: the whole window. No attention, no data-dependent control flow: it exports with
`torch.export.export(model, (x,), strict=False)` for the service's scoring. Training: AdamW, a short linear warmup,
then a cosine decay that reaches its floor when the wall-clock budget (prepare.TIME_BUDGET seconds) runs out;
then one call to prepare.evaluate_bpb and one JSON line.

Submit it to the run service:

    python bench/service_client.py --token pgs_... examples/service/dilated_cnn.py

Run it locally (the harness's local mode; the dataset is built once with `python -m tools.service.dataset`):

    PYTHONPATH=tools/service/harness python examples/service/dilated_cnn.py
    PG_TIME_BUDGET=30 TORCH_SEED=1 PYTHONPATH=tools/service/harness python examples/service/dilated_cnn.py

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
    channels: int = 96
    stacks: int = 2  # each stack: dilations 1, 2, 4, ..., max_dilation
    max_dilation: int = 128
    vocab_size: int = prepare.VOCAB_SIZE

    @property
    def dilations(self) -> list[int]:
        one_stack = [2**i for i in range(int(math.log2(self.max_dilation)) + 1)]
        return one_stack * self.stacks


# Training, sized for the default 180 s budget on a 2-core CPU.
BATCH_SIZE = 16
EVAL_BATCH_SIZE = 64
PEAK_LR = 3e-3
MIN_LR_FRACTION = 0.05  # the cosine's floor, reached when the budget ends
WARMUP_STEPS = 30
WEIGHT_DECAY = 0.05
GRAD_CLIP = 1.0


class RMSNorm(nn.Module):
    """Over the channels of each position ([B, C, T] layout), so it mixes nothing across time."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-6) * self.weight[:, None]


class GatedBlock(nn.Module):
    """x + W_out (tanh(a) * sigmoid(b)), where [a; b] is a kernel-2 convolution of norm(x) at x[t - d] and x[t]."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.dilation = dilation
        self.norm = RMSNorm(channels)
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size=2, dilation=dilation)
        self.out = nn.Conv1d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(self.norm(x), (self.dilation, 0))  # left padding only: output t sees inputs t - d and t
        a, b = self.conv(h).chunk(2, dim=1)
        return x + self.out(torch.tanh(a) * torch.sigmoid(b))


class DilatedCNN(nn.Module):
    """int64 token ids [B, T] -> logits [B, T, vocab_size]; position t sees x[:, :t+1] only."""

    def __init__(self, config: Config = Config()):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.channels)
        self.blocks = nn.ModuleList(GatedBlock(config.channels, d) for d in config.dilations)
        self.norm = RMSNorm(config.channels)
        self.head = nn.Linear(config.channels, config.vocab_size)
        nn.init.normal_(self.embedding.weight, std=0.5)
        for block in self.blocks:  # residual branches start small, scaled by depth
            nn.init.normal_(block.out.weight, std=0.02 / math.sqrt(len(self.blocks)))
            nn.init.zeros_(block.out.bias)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    @property
    def receptive_field(self) -> int:
        return 1 + sum(self.config.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embedding(x).transpose(1, 2)  # [B, C, T]: what Conv1d wants
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).transpose(1, 2))


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """AdamW; weight decay on the weight matrices and kernels only (not on norms and biases)."""
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
    model = DilatedCNN(Config())
    num_params = sum(p.numel() for p in model.parameters())
    print(f"dilated CNN: {num_params:,} parameters, receptive field {model.receptive_field}, "
          f"budget {prepare.TIME_BUDGET} s", file=sys.stderr, flush=True)
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
