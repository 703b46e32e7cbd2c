"""One run: the submitted file in the sandbox, beside the evaluator thread that scores its model.

    runs/<id>/work/   train.py (the submission) and prepare.py (the harness): the child's read-only cwd
    runs/<id>/out/    the only folder the child writes: model.pt2 and eval_request.json when it asks to be scored
    runs/<id>/reply/  read-only to the child: eval_result.json, the service's answer (val_bpb, or why not)
    runs/<id>/scoring/  the service's: a copy of the model and one folder per scoring call (never shown to the child)
    runs/<id>/model.pt2, output.txt   kept after the run: the scored model and the child's last lines

The child also sees the training works (read-only). It never sees the validation text: the evaluator scores a copy
of the exported model in separate sandboxes (tools.service.evaluation). Files the child wrote are opened relative
to out/ without following symlinks, so a planted link cannot make the service read its own files.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.service.config import ServiceConfig
from tools.service.evaluation import SEQ_LEN, VOCAB_SIZE, Evaluation, Layout, evaluate_export, failed_evaluation
from tools.service.outcome import ChildEnd, decide, parse_reported, reported_number
from tools.verify.probes.scorer import remove_tree
from tools.verify.sandbox import run_sandboxed

HARNESS_FILE = Path(__file__).resolve().parent / "harness" / "prepare.py"
# The exchange's names and bounds; harness/prepare.py states the same (a test holds them equal).
MODEL_FILE, REQUEST_FILE, RESULT_FILE = "model.pt2", "eval_request.json", "eval_result.json"
MAX_EVAL_BATCH = 256
MAX_REQUEST_BYTES = 4096
MAX_MODEL_BYTES = 1024**3
TAIL_LINES = 40


@dataclass(frozen=True)
class RunJob:
    id: int  # the database id: names the run's folder
    label: str  # "run-N", numbered per token
    owner: str
    code: str
    seed: int | None = None  # TORCH_SEED in the child's environment (a record's seed run)


@dataclass
class RunResult:
    status: str
    reason: str
    val_bpb: float | None = None
    reported: dict | None = None  # the code's last JSON results line, as printed
    reported_val_bpb: float | None = None
    reported_mismatch: bool = False
    flags: list[str] = field(default_factory=list)
    steps: int | None = None  # as reported by the code
    training_s: float | None = None  # the service's clock: child start to its evaluation request
    reported_training_s: float | None = None
    eval_s: float | None = None
    wall_s: float | None = None
    output_tail: list[str] = field(default_factory=list)
    evaluation: dict | None = None
    isolation: str = ""
    model_zlib_bytes: int | None = None  # the kept exported model, zlib level 9: what a record's artifact counts

    def to_dict(self) -> dict:
        return asdict(self)


class Capture:
    """Called with each output line of the child: keeps the last results line (a JSON object with val_bpb)."""

    def __init__(self) -> None:
        self.reported: dict | None = None

    def __call__(self, line: str) -> None:
        if line.lstrip().startswith("{"):
            parsed = parse_reported(line)
            if parsed is not None:
                self.reported = parsed


def open_child_file(folder: Path, name: str, max_bytes: int) -> tuple[int, int] | None:
    """(fd, size) of `folder/name`, a regular file the child wrote, opened without following a symlink (neither the
    name nor a swapped-in link); None when absent. ValueError when it is not a regular file or too large."""
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as problem:
        raise ValueError(f"{name}: cannot be opened ({problem.strerror})") from None
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(fd)
        raise ValueError(f"{name}: not a regular file of at most {max_bytes} bytes")
    return fd, info.st_size


def parse_request(raw: bytes) -> int:
    """The batch size of an evaluation request; ValueError naming what is wrong."""
    try:
        request = json.loads(raw)
    except ValueError:
        raise ValueError("the evaluation request is not JSON") from None
    if not isinstance(request, dict):
        raise ValueError("the evaluation request is not a JSON object")
    if request.get("seq_len") != SEQ_LEN or request.get("vocab_size") != VOCAB_SIZE:
        raise ValueError(f"the model must take [B, {SEQ_LEN}] and give [B, {SEQ_LEN}, "
                         f"{VOCAB_SIZE}]")
    batch = request.get("batch_size")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_EVAL_BATCH:
        raise ValueError(f"batch_size must be an integer in 1..{MAX_EVAL_BATCH}")
    return batch


class Evaluator(threading.Thread):
    """Waits for the child's evaluation request, scores the model, answers in reply/. One request per run."""

    def __init__(self, config: ServiceConfig, layout: Layout, run_dir: Path, started: float,
                 progress: Callable[[str], None] | None = None):
        super().__init__(name=f"evaluator-{run_dir.name}", daemon=True)
        self.config, self.layout, self.run_dir, self.started = config, layout, run_dir, started
        self.progress = progress
        self.ended = threading.Event()
        self.evaluation: Evaluation | None = None
        self.refused = ""
        self.training_s: float | None = None

    def child_ended(self) -> None:
        self.ended.set()

    def run(self) -> None:
        try:
            self._serve()
        except Exception as problem:  # never leave the child waiting without an answer
            self.refused = f"internal error while scoring: {type(problem).__name__}: {problem}"
            self._answer({"val_bpb": None, "error": self.refused})

    def _serve(self) -> None:
        out = self.run_dir / "out"
        while True:
            try:
                opened = open_child_file(out, REQUEST_FILE, MAX_REQUEST_BYTES)
            except ValueError as problem:
                return self._refuse(str(problem))
            if opened is not None:
                break
            if self.ended.wait(0.1):
                return
        self.training_s = time.monotonic() - self.started
        fd, _ = opened
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(MAX_REQUEST_BYTES + 1)
        deadline = self.config.time_budget_s + self.config.grace_s
        if self.training_s > deadline:
            return self._refuse(f"evaluation asked for {self.training_s:.1f} s after the start, past the training "
                                f"budget of {self.config.time_budget_s:g} s (+ {self.config.grace_s:g} s to start up "
                                "and export)")
        try:
            batch = parse_request(raw)
            model = self._copy_model(out)
        except ValueError as problem:
            return self._refuse(str(problem))
        evaluation = evaluate_export(model, batch, self.layout, self.run_dir / "scoring",
                                     max_rows=self.config.eval_max_rows, call_timeout_s=self.config.call_timeout_s,
                                     unisolated=self.config.unisolated, cancelled=self.ended.is_set,
                                     progress=self.progress)
        self.evaluation = evaluation
        if evaluation.passed:
            self._answer({"val_bpb": evaluation.val_bpb})
        else:
            self._answer({"val_bpb": None, "error": evaluation.failure})

    def _copy_model(self, out: Path) -> Path:
        opened = open_child_file(out, MODEL_FILE, MAX_MODEL_BYTES)
        if opened is None:
            raise ValueError(f"the evaluation request came without {MODEL_FILE}")
        fd, _ = opened
        target = self.run_dir / "model.pt2"
        copied = 0
        with os.fdopen(fd, "rb") as source, open(target, "wb") as sink:
            while chunk := source.read(1024 * 1024):
                copied += len(chunk)
                if copied > MAX_MODEL_BYTES:  # it may grow while we read
                    raise ValueError(f"{MODEL_FILE} is larger than {MAX_MODEL_BYTES} bytes")
                sink.write(chunk)
        return target

    def _refuse(self, why: str) -> None:
        self.refused = why
        self.evaluation = None
        self._answer({"val_bpb": None, "error": why})

    def _answer(self, answer: dict) -> None:
        reply = self.run_dir / "reply"
        partial = reply / ".answer.partial"
        partial.write_text(json.dumps(answer))
        partial.chmod(0o644)
        os.replace(partial, reply / RESULT_FILE)


def prepare_run_dir(run_dir: Path, code: str) -> None:
    if run_dir.exists():
        remove_tree(run_dir)  # a run re-executed after a restart starts clean
    for name in ("work", "out", "reply"):
        (run_dir / name).mkdir(parents=True)
    (run_dir / "work" / "train.py").write_text(code, encoding="utf-8")
    shutil.copyfile(HARNESS_FILE, run_dir / "work" / "prepare.py")
    for path in (run_dir, run_dir / "work", run_dir / "reply", run_dir / "work" / "train.py",
                 run_dir / "work" / "prepare.py"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def execute_run(job: RunJob, config: ServiceConfig, layout: Layout, train_dir: Path,
                progress: Callable[[str], None] | None = None) -> RunResult:
    """Run `job` to the end and decide its outcome. Raises only when the sandbox cannot run at all."""
    run_dir = config.runs_dir / str(job.id)
    prepare_run_dir(run_dir, job.code)
    env = {"PG_TIME_BUDGET": f"{config.time_budget_s:g}", "PG_SERVICE_TRAIN_DIR": str(train_dir),
           "PG_SERVICE_OUT_DIR": str(run_dir / "out"), "PG_SERVICE_REPLY_DIR": str(run_dir / "reply"),
           "CUDA_VISIBLE_DEVICES": ""}
    if job.seed is not None:
        env["TORCH_SEED"] = str(job.seed)
    capture = Capture()
    started = time.monotonic()
    evaluator = Evaluator(config, layout, run_dir, started, progress)
    evaluator.start()
    try:
        sandboxed = run_sandboxed(["python", "train.py"], cwd=run_dir / "work", timeout_s=config.run_limit_s,
                                  env=env, on_line=capture, inputs=[train_dir, run_dir / "reply"],
                                  writable=[run_dir / "out"], limits=config.child_limits,
                                  unisolated=config.unisolated, tail_lines=TAIL_LINES)
    finally:
        evaluator.child_ended()
        evaluator.join()
    tail = [line[:500] for line in sandboxed.output_tail.splitlines()][-TAIL_LINES:]
    last = next((line for line in reversed(tail) if line.strip()), "")
    child = ChildEnd(sandboxed.returncode, sandboxed.timed_out, sandboxed.killed, sandboxed.wall_s, last)
    evaluation = evaluator.evaluation
    if evaluation is None and not evaluator.refused and evaluator.training_s is not None:
        evaluation = failed_evaluation("scoring", "the run ended before its evaluation finished", cancelled=True)
    decision = decide(child, evaluation, capture.reported, config.run_limit_s, evaluator.refused)
    result = RunResult(
        status=decision.status, reason=decision.reason, val_bpb=decision.val_bpb, reported=capture.reported,
        reported_val_bpb=decision.reported_val_bpb, reported_mismatch=decision.reported_mismatch,
        flags=list(decision.flags), steps=_int(reported_number(capture.reported, "total_steps")),
        training_s=evaluator.training_s, reported_training_s=reported_number(capture.reported, "training_time_secs"),
        eval_s=evaluation.wall_s if evaluation is not None else None, wall_s=sandboxed.wall_s, output_tail=tail,
        evaluation=evaluation.to_dict() if evaluation is not None else None, isolation=sandboxed.isolation,
        model_zlib_bytes=compressed_size(run_dir / "model.pt2") if decision.val_bpb is not None else None)
    (run_dir / "output.txt").write_text("\n".join(tail) + "\n")
    for name in ("out", "scoring", "work"):  # the code is in the database; the model copy and output stay
        if (run_dir / name).exists():
            remove_tree(run_dir / name)
    return result


def compressed_size(path: Path) -> int | None:
    """Bytes of `path` compressed with zlib at level 9 (a record's artifact counts the model this way)."""
    if not path.is_file():
        return None
    compressor, total = zlib.compressobj(9), 0
    with open(path, "rb") as source:
        while chunk := source.read(1024 * 1024):
            total += len(compressor.compress(chunk))
    return total + len(compressor.flush())


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
