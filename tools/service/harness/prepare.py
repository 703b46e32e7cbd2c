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

Local mode. Without the service's variables (PG_SERVICE_TRAIN_DIR, PG_SERVICE_OUT_DIR, PG_SERVICE_REPLY_DIR all
unset) the same training file runs directly, e.g. `PYTHONPATH=tools/service/harness python train.py`: the training
works come from a local byte dataset folder (tools/service/dataset.py: train/, val/, manifest.json), namely
$PG_PREPARE_DATA, else $PG_SERVICE_DIR/data/shakespeare_bytes, else logs/service/data/shakespeare_bytes in the
repository (built by `python -m tools.service.dataset`), and `evaluate_bpb` exports the model exactly as in the
service and scores the local validation works in this process, with the service's windows and arithmetic (float32
logits, log-softmax in float64). It checks neither causality nor anything else the service's probes check, and its
number is only a rehearsal: the score that counts is the service's.

This file is copied beside the training code in each run; it needs only torch and the standard library.
"""

from __future__ import annotations

import hashlib
import json
import math
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
# Local mode (none of the three set): the byte dataset folder, and how to build the default one.
_LOCAL_DATA_ENV, _STATE_DIR_ENV = "PG_PREPARE_DATA", "PG_SERVICE_DIR"
_DATASET_NAME, _BUILD_COMMAND = "shakespeare_bytes", "python -m tools.service.dataset"
_SERVICE_GRACE_S = 30.0  # the service's default: evaluation must be asked for by TIME_BUDGET + this after the start
_STARTED = time.monotonic()

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


def local_mode() -> bool:
    """True when the code runs outside the service (none of the service's variables is set)."""
    return not any(os.environ.get(name) for name in (_TRAIN_DIR_ENV, _OUT_DIR_ENV, _REPLY_DIR_ENV))


def _repository() -> Path | None:
    """The checkout this harness belongs to (or the working directory is in), if any."""
    here = Path(__file__).resolve().parent
    try:
        cwd = Path.cwd().resolve()
        places = (*here.parents, cwd, *cwd.parents)
    except OSError:
        places = tuple(here.parents)
    return next((p for p in places if (p / "tools" / "service" / "dataset.py").is_file()), None)


def local_data_dir() -> Path:
    """The byte dataset of local mode: $PG_PREPARE_DATA, else the service's default folder. Raises RuntimeError
    saying how to build it when it is missing."""
    configured, state = os.environ.get(_LOCAL_DATA_ENV), os.environ.get(_STATE_DIR_ENV)
    repository = _repository()
    if configured:
        folder = Path(configured).expanduser()
    elif state:
        folder = Path(state).expanduser() / "data" / _DATASET_NAME
    elif repository is not None:
        folder = repository / "logs" / "service" / "data" / _DATASET_NAME
    else:
        raise RuntimeError(f"local mode: no byte dataset; set {_LOCAL_DATA_ENV} to a byte dataset folder (train/, "
                           f"val/, manifest.json: `{_BUILD_COMMAND} FOLDER` in the repository builds one)")
    if not (folder / "manifest.json").is_file():
        default = not configured and repository is not None and not state
        command = _BUILD_COMMAND if default else f"{_BUILD_COMMAND} {folder}"
        where = f" (from {repository})" if repository is not None else " (from the repository root)"
        raise RuntimeError(f"local mode: no byte dataset at {folder} (no manifest.json); build it with "
                           f"`{command}`{where}, or set {_LOCAL_DATA_ENV} to a byte dataset folder")
    return folder


def _train_dir() -> Path:
    if local_mode():
        return local_data_dir() / "train"
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


def _export(model: torch.nn.Module, rows: int, device) -> torch.export.ExportedProgram:
    """The model as the service scores it: exported for int64 input [rows, 256], its output shape checked."""
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
            return torch.export.export(model, (example,), strict=False)
    finally:
        model.train(was_training)


def evaluate_bpb(model: torch.nn.Module, batch_size: int, device="cpu") -> float:
    """Bits per byte of `model` on the validation works, computed by the service. `model(x)` must map int64 token
    ids [B, 256] to logits [B, 256, VOCAB_SIZE] and be exportable with torch.export (no data-dependent Python
    control flow). Raises RuntimeError when the service refuses the model (the reason is in the message).
    In local mode (see the module docstring) the same export is scored here, on the local validation works."""
    global _evaluated
    if local_mode():
        folder = local_data_dir()  # a missing dataset is said first, and does not use up the one evaluation
        if _evaluated:
            raise RuntimeError("evaluate_bpb runs once per run: the service scores one model")
        _evaluated = True
        return _evaluate_locally(model, batch_size, device, folder)
    out_dir, reply_dir = _exchange_dirs()
    if _evaluated:
        raise RuntimeError("evaluate_bpb runs once per run: the service scores one model")
    _evaluated = True
    rows = max(1, min(int(batch_size), MAX_EVAL_BATCH))
    program = _export(model, rows, device)
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


def _validation_bytes(folder: Path) -> torch.Tensor:
    """The local validation works' bytes, concatenated in the manifest's (name) order, checked against it."""
    manifest = json.loads((folder / "manifest.json").read_text())
    parts = []
    for entry in manifest["documents"]:
        if entry["split"] != "val":
            continue
        raw = (folder / "val" / entry["name"]).read_bytes()
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise RuntimeError(f"{folder}/val/{entry['name']}: sha256 does not match the manifest")
        parts.append(raw)
    data = b"".join(parts)
    if not data or len(data) != manifest["val_bytes"]:
        raise RuntimeError(f"{folder}: {len(data)} validation bytes, the manifest says {manifest['val_bytes']}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.long)


def _evaluate_locally(model: torch.nn.Module, batch_size: int, device, folder: Path) -> float:
    """The service's score computed in this process: the same export, the validation bytes cut into non-overlapping
    256-byte windows (window k: x = BOS + bytes[256k : 256k + 255], every byte of bytes[256k : 256k + 256] scored,
    the last window padded with BOS), the exported program run on `rows` windows at a time (the last chunk padded
    with copies of its last row), float32 logits, log-softmax in float64, -sum log p(gold) / ln 2 / bytes."""
    print(f"evaluate_bpb: LOCAL score on {folder}/val, computed in this process; only the run service's score "
          "counts", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - _STARTED
    if elapsed > TIME_BUDGET + _SERVICE_GRACE_S:
        print(f"evaluate_bpb: called {elapsed:.0f} s after the start; the service refuses evaluation asked for "
              f"later than TIME_BUDGET + {_SERVICE_GRACE_S:g} s = {TIME_BUDGET + _SERVICE_GRACE_S:g} s",
              file=sys.stderr, flush=True)
    rows = max(1, min(int(batch_size), MAX_EVAL_BATCH))
    program = _export(model, rows, device).module()
    val = _validation_bytes(folder)
    n_windows = -(-len(val) // MAX_SEQ_LEN)
    stream = torch.full((n_windows, MAX_SEQ_LEN + 1), BOS_TOKEN, dtype=torch.long)  # per window: BOS, its bytes
    lengths = torch.zeros(n_windows, dtype=torch.long)
    for k in range(n_windows):
        chunk = val[k * MAX_SEQ_LEN : (k + 1) * MAX_SEQ_LEN]
        stream[k, 1 : 1 + len(chunk)] = chunk
        lengths[k] = len(chunk)
    positions = torch.arange(MAX_SEQ_LEN)
    total_nats = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, n_windows, rows):
            x, y = stream[start : start + rows, :-1], stream[start : start + rows, 1:]
            real = len(x)
            if real < rows:
                x = torch.cat([x, x[-1:].expand(rows - real, -1)])
            logits = program(x.to(device))
            if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (rows, MAX_SEQ_LEN, VOCAB_SIZE):
                shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise RuntimeError(f"the exported model returned {shape}, expected [{rows}, {MAX_SEQ_LEN}, "
                                   f"{VOCAB_SIZE}]")
            logits = logits[:real].detach().to("cpu", torch.float32)
            if torch.isnan(logits).any() or torch.isposinf(logits).any():
                raise RuntimeError("the model's logits hold NaN or +inf: the service refuses them")
            for block in range(0, real, 16):  # float64 a few rows at a time, like the service
                end = min(block + 16, real)
                logprobs = logits[block:end].double().log_softmax(dim=-1)
                gold = logprobs.gather(-1, y[block:end, :, None])[..., 0]
                scored = positions[None, :] < lengths[start + block : start + end, None]
                total_nats -= gold[scored].sum()
    total = float(total_nats)
    if math.isnan(total):
        raise RuntimeError("the service would not score the model: a position's logits are all -inf")
    if math.isinf(total):
        raise RuntimeError("the service would not score the model: some validation bytes get probability 0")
    return total / math.log(2) / len(val)
