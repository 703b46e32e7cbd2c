"""The challenge harness: training code submitted to the run service does `import prepare` and uses what is here.

    MAX_SEQ_LEN = 256, VOCAB_SIZE = 257 (256 byte values + BOS), BOS_TOKEN = 256, TIME_BUDGET (seconds of training)
    ByteTokenizer().encode(text) -> list[int]; .decode(ids) -> str
    make_dataloader(batch_size, seq_len, split, device)  endless (x, y) LongTensor pairs [batch_size, seq_len]
    _get_data_files(split), _load_shard(path)            the training works as 1-D LongTensors of byte values
    evaluate_bpb(model, batch_size, device) -> float     the service's bits per byte on the validation works

Data: the Shakespeare works and split of `data/prepare.py shakespeare`, as bytes. Only the training split exists in
the sandbox; the validation text never does. `evaluate_bpb` exports the model (torch.export, input [rows, 256]
int64 token ids, output logits [rows, 256, VOCAB_SIZE]) and hands the file to the service, which scores it in
fresh sandboxed processes of its own: it picks the validation windows (non-overlapping 256-byte windows, BOS first,
x = BOS + bytes[:-1], y = bytes), applies log-softmax, computes the cross-entropy and checks causality inside the
same calls. The number returned is the service's; printing another one changes nothing (it is shown as
"reported" and flagged). One evaluation per run. CPU only.

At the end, print one JSON line: {"val_bpb": ..., "total_steps": ..., "training_time_secs": ...}.

This file is copied beside the training code in each run; it needs only torch and the standard library.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

MAX_SEQ_LEN = 256
VOCAB_SIZE = 257
BOS_TOKEN = 256
_budget = float(os.environ.get("PG_TIME_BUDGET", "180"))
TIME_BUDGET = int(_budget) if _budget.is_integer() else _budget
MAX_EVAL_BATCH = 256  # rows per forward pass when the service scores the exported model

# Set by the service for each run (the sandbox shows exactly these folders).
_TRAIN_DIR_ENV, _OUT_DIR_ENV, _REPLY_DIR_ENV = "PG_SERVICE_TRAIN_DIR", "PG_SERVICE_OUT_DIR", "PG_SERVICE_REPLY_DIR"
MODEL_FILE, REQUEST_FILE, RESULT_FILE = "model.pt2", "eval_request.json", "eval_result.json"

_evaluated = False
_data_cache: torch.Tensor | None = None


class ByteTokenizer:
    """One token per UTF-8 byte (ids 0..255); BOS_TOKEN marks the start of a window and decodes to nothing."""

    vocab_size = VOCAB_SIZE
    bos_token_id = BOS_TOKEN

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        values = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return bytes(int(i) for i in values if 0 <= int(i) < 256).decode("utf-8", errors="replace")


def _train_dir() -> Path:
    folder = os.environ.get(_TRAIN_DIR_ENV)
    if not folder:
        raise RuntimeError(f"{_TRAIN_DIR_ENV} is not set: this harness runs inside the run service")
    return Path(folder)


def _get_data_files(split: str = "train") -> list[str]:
    """The training works, one file each, sorted by name. Only "train": validation belongs to the service."""
    if split != "train":
        raise ValueError(f"split {split!r}: only 'train' is available; the service keeps the validation text and "
                         "scores it in evaluate_bpb")
    return sorted(str(p) for p in _train_dir().iterdir() if p.is_file())


def _load_shard(path) -> torch.Tensor:
    """One file as a 1-D LongTensor of its byte values (0..255)."""
    raw = Path(path).read_bytes()
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.long)


def _training_bytes() -> torch.Tensor:
    global _data_cache
    if _data_cache is None:
        _data_cache = torch.cat([_load_shard(path) for path in _get_data_files("train")])
    return _data_cache


def make_dataloader(batch_size: int, seq_len: int = MAX_SEQ_LEN, split: str = "train", device="cpu"):
    """Endless (x, y) pairs of LongTensors [batch_size, seq_len]: y is a window of the split's bytes at a random
    offset (torch's global RNG, so torch.manual_seed makes it repeatable), x is BOS followed by y[:-1]."""
    if split != "train":
        _get_data_files(split)  # raises with the reason
    if not 1 <= seq_len <= MAX_SEQ_LEN:
        raise ValueError(f"seq_len must be in 1..{MAX_SEQ_LEN}, got {seq_len}")
    data = _training_bytes()
    offsets = torch.arange(seq_len)
    while True:
        starts = torch.randint(0, len(data) - seq_len + 1, (batch_size,))
        y = data[starts[:, None] + offsets]
        x = torch.empty_like(y)
        x[:, 0] = BOS_TOKEN
        x[:, 1:] = y[:, :-1]
        yield x.to(device), y.to(device)


def _exchange_dirs() -> tuple[Path, Path]:
    out, reply = os.environ.get(_OUT_DIR_ENV), os.environ.get(_REPLY_DIR_ENV)
    if not out or not reply:
        raise RuntimeError("evaluate_bpb is answered by the run service; submit this code with POST /run")
    return Path(out), Path(reply)


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def evaluate_bpb(model: torch.nn.Module, batch_size: int, device="cpu") -> float:
    """Bits per byte of `model` on the validation works, computed by the service. `model(x)` must map int64 token
    ids [B, 256] to logits [B, 256, VOCAB_SIZE] and be exportable with torch.export (no data-dependent Python
    control flow). Raises RuntimeError when the service refuses the model (the reason is in the message)."""
    global _evaluated
    out_dir, reply_dir = _exchange_dirs()
    if _evaluated:
        raise RuntimeError("evaluate_bpb runs once per run: the service scores one model")
    _evaluated = True
    rows = max(1, min(int(batch_size), MAX_EVAL_BATCH))
    example = torch.randint(0, 256, (rows, MAX_SEQ_LEN), dtype=torch.long, device=device)
    example[:, 0] = BOS_TOKEN
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(example)
            if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (rows, MAX_SEQ_LEN, VOCAB_SIZE):
                shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise RuntimeError(f"model(x) must return logits [{rows}, {MAX_SEQ_LEN}, {VOCAB_SIZE}], got {shape}")
            program = torch.export.export(model, (example,), strict=False)
    finally:
        model.train(was_training)
    partial = out_dir / ("partial-" + MODEL_FILE)  # torch wants the .pt2 suffix
    torch.export.save(program, str(partial))
    os.replace(partial, out_dir / MODEL_FILE)
    request = {"batch_size": rows, "seq_len": MAX_SEQ_LEN, "vocab_size": VOCAB_SIZE}
    _write_atomic(out_dir / REQUEST_FILE, json.dumps(request).encode())
    print(f"evaluate_bpb: model exported ({(out_dir / MODEL_FILE).stat().st_size} bytes); waiting for the service's "
          "score", file=sys.stderr, flush=True)
    result_path = reply_dir / RESULT_FILE
    while not result_path.exists():  # the service's time limit bounds the wait
        time.sleep(0.1)
    result = json.loads(result_path.read_text())
    if result.get("val_bpb") is None:
        raise RuntimeError(f"the service did not score the model: {result.get('error', 'no reason given')}")
    return float(result["val_bpb"])
