"""The service's side of one scoring call: the run's exported model, run by the service's own script
(harness/score_call.py) in a fresh sandboxed process per call; what comes back is checked and turned into
log-probabilities by the service.

Per call the child sees, read-only, a folder holding the script and the model copy, and the call's tokens; it
writes one file, logits.npy, into a folder of its own. The service maps that file only after checking its header,
dtype, shape and exact size (tools.verify.probes.scorer.open_logprobs), refuses NaN and +inf, and applies
log-softmax itself in float64: the model supplies logits, never probabilities, so normalization cannot be gamed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tools.verify.probes.arithmetic import logsumexp
from tools.verify.probes.scorer import (
    ScorerFailed,
    call_folder_name,
    call_limits,
    check_values,
    open_logprobs,
    remove_tree,
)
from tools.verify.sandbox import run_sandboxed

HARNESS_DIR = Path(__file__).resolve().parent / "harness"
SCORE_SCRIPT = "score_call.py"
MODEL_NAME = "model.pt2"


class Cancelled(Exception):
    """The run ended (its child exited or was killed) while its model was being scored."""


def log_softmax(logits: np.ndarray, block_rows: int = 16) -> np.ndarray:
    """float64 log-probabilities from logits [B, T, V], a few rows at a time (memory: the result plus one block). A
    position whose logits are all -inf becomes NaN, which the normalization check reports."""
    result = np.empty(logits.shape, dtype=np.float64)
    for start in range(0, len(logits), block_rows):
        block = np.asarray(logits[start : start + block_rows], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            result[start : start + block_rows] = block - logsumexp(block)[..., None]
    return result


class ExportScorer:
    """Scores token rows with one exported model; `score` is what tools.verify.probes.run.run_plan calls."""

    def __init__(self, model: Path, batch_size: int, vocab_size: int, work_dir: Path, *, timeout_s: float,
                 unisolated: bool = False, cancelled: Callable[[], bool] = lambda: False):
        self.batch_size, self.vocab_size = int(batch_size), int(vocab_size)
        self.timeout_s, self.unisolated, self.cancelled = timeout_s, unisolated, cancelled
        self.bin = Path(work_dir) / "bin"
        self.calls_dir = Path(work_dir) / "calls"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.calls_dir.mkdir(exist_ok=True)
        shutil.copyfile(HARNESS_DIR / SCORE_SCRIPT, self.bin / SCORE_SCRIPT)
        if Path(model) != self.bin / MODEL_NAME:
            shutil.copyfile(model, self.bin / MODEL_NAME)
        for path in (self.bin, self.bin / SCORE_SCRIPT, self.bin / MODEL_NAME):
            path.chmod(0o755 if path.is_dir() else 0o644)
        self.count = 0
        self.wall_s = 0.0

    @contextmanager
    def score(self, tokens: np.ndarray) -> Iterator[np.ndarray]:
        if self.cancelled():
            raise Cancelled("the run ended before its evaluation finished")
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        self.count += 1
        call_dir = self.calls_dir / call_folder_name(self.count)
        inbox, outbox = call_dir / "in", call_dir / "out"
        inbox.mkdir(parents=True)
        outbox.mkdir()
        try:
            np.save(inbox / "tokens.npy", tokens, allow_pickle=False)
            for path in (call_dir, inbox, inbox / "tokens.npy"):
                path.chmod(0o755 if path.is_dir() else 0o644)
            shape = (tokens.shape[0], tokens.shape[1], self.vocab_size)
            out_path = outbox / "logits.npy"
            argv = ["python", SCORE_SCRIPT, "--model", MODEL_NAME, "--tokens", str(inbox / "tokens.npy"),
                    "--out", str(out_path), "--batch", str(self.batch_size), "--vocab", str(self.vocab_size)]
            result = run_sandboxed(argv, cwd=self.bin, timeout_s=self.timeout_s, inputs=[inbox], writable=[outbox],
                                   limits=call_limits(shape), kill_grace_s=1.0, unisolated=self.unisolated,
                                   tail_lines=6)
            self.wall_s += result.wall_s
            if result.timed_out or result.killed or result.returncode != 0:
                why = ("timed out" if result.timed_out else f"went over the {result.killed} limit" if result.killed
                       else f"exited with code {result.returncode}")
                last = [line for line in result.output_tail.splitlines() if line.strip()][-2:]
                raise ScorerFailed(f"scoring the exported model {why}: {' | '.join(s[:300] for s in last)}")
            logits = open_logprobs(out_path, shape)
            check_values(logits, "the model's logits")
            logprobs = log_softmax(logits)
            del logits
            yield logprobs
        finally:
            remove_tree(call_dir)
