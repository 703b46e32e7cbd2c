"""The judge's side of a record's scoring entry point (docs/CONTRACTS.md §4), run only in the sandbox.

    python train_gpt.py score --artifact A --tokens IN.npy --out OUT.npy   # IN: int64 [B, T]; OUT: float [B, T, V]

A record's code is never imported here: each call copies the record folder into a fresh private temporary
folder (regular files only, no symlinks, none of the other seeds' artifacts), runs the script there through
`run_sandboxed` with a time limit (the child sees its copy and the tokens read-only, and writes only its output
folder), and reads back nothing but a plain array, whose header, shape, dtype, size
and values are checked before the judge does any arithmetic on it. A fresh copy per call keeps one call from
leaving state in its folder for the next.

`ScorerSession` owns one temporary folder for all of its calls and removes it on exit (also on Ctrl-C or error);
the sandbox kills every process a call started before the call returns.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.verify.sandbox import Limits, SandboxResult, run_sandboxed

SCORE_COMMAND = "score"
ACCEPTED_DTYPES = (np.dtype("<f4"), np.dtype("<f8"))
MAX_HEADER_BYTES = 64 * 1024  # numpy writes ~128 bytes; more is not an honest array header
MAX_COPY_BYTES = 1024**3  # a record is code, logs and one 16 MB artifact; refuse to copy anything bigger
VALUE_SCAN_BYTES = 64 * 1024**2
KILL_GRACE_S = 1.0  # a scorer has nothing to save: a timed-out call is killed soon after SIGTERM  # values are checked block by block, so memory stays bounded
# What a script that has no `score` command prints when it is asked for one (argparse, click, our baseline).
_USAGE_ERROR = re.compile(
    r"usage:|unknown command|invalid choice|no such command|unrecognized arguments|unrecognised arguments",
    re.IGNORECASE,
)
_ARTIFACT_NAME = re.compile(r"^final_model_seed\d+\.")


class ScorerUnavailable(Exception):
    """The record offers no usable scoring entry point (no script, no `score` command, no artifact):
    the probes cannot run and a human must review the model."""


class ScorerFailed(Exception):
    """The scoring entry point ran but did not deliver: it crashed, timed out, or wrote an array that breaks the
    contract (wrong shape, dtype or size, NaN or +inf). The probe that asked fails with this message."""


@dataclass(frozen=True)
class ScorerCall:
    """What one child call cost and how it ended (for the probes' evidence and the benchmark)."""

    rows: int
    positions: int
    wall_s: float
    output_bytes: int


def call_limits(shape: tuple[int, int, int]) -> Limits:
    """The sandbox's limits for one call, sized from the one file it must write: float64 [B, T, V] at most."""
    out_bytes = 8 * shape[0] * shape[1] * shape[2] + MAX_HEADER_BYTES
    return Limits(memory_bytes=max(4 * 1024**3, 2 * 1024**3 + 3 * out_bytes), file_bytes=out_bytes,
                  disk_bytes=out_bytes + 64 * 1024**2)


def call_folder_name(count: int) -> str:
    """A fresh random name per call: the child sees its folder's path, and must not learn from it which call it is
    (a first run or the judge's re-run of the same inputs). `count` is for tests that plant run-dependent scorers."""
    return f"call-{secrets.token_hex(8)}"


def has_score_entry_point(script_text: str) -> bool:
    """Whether the script mentions the contract's `score` flags at all.

    A public-competition script ignores its arguments and starts training when run as `train_gpt.py score ...`;
    asking it would burn the whole time limit. A script without both flag names cannot implement the contract,
    so it is not run. (A hostile script can contain the strings; it is then run and judged like any other.)
    """
    return "--artifact" in script_text and "--tokens" in script_text and SCORE_COMMAND in script_text


def looks_like_usage_error(result: SandboxResult) -> bool:
    """A child that refused the command line (argparse/click usage error) rather than crashing while scoring."""
    return result.returncode == 2 and bool(_USAGE_ERROR.search(result.output_tail))


def copy_record(record_dir: Path, destination: Path, keep_artifact: str, max_bytes: int = MAX_COPY_BYTES) -> None:
    """Copy the record's regular files into `destination`; symlinks (which could point out of the record) and the
    other seeds' artifacts are left out. ScorerFailed when the folder holds more than `max_bytes`."""
    total = 0
    for directory, subdirectories, names in os.walk(record_dir, followlinks=False):
        source_dir = Path(directory)
        target_dir = destination / source_dir.relative_to(record_dir)
        target_dir.mkdir(parents=True, exist_ok=True)
        subdirectories[:] = [d for d in subdirectories if not (source_dir / d).is_symlink()]
        for name in names:
            source = source_dir / name
            info = os.lstat(source)
            if not stat.S_ISREG(info.st_mode):
                continue
            if source_dir == record_dir and _ARTIFACT_NAME.match(name) and name != keep_artifact:
                continue
            total += info.st_size
            if total > max_bytes:
                raise ScorerFailed(f"{record_dir}: the record folder holds more than {max_bytes} bytes; not copied")
            _copy_regular_file(source, target_dir / name)


def _copy_regular_file(source: Path, target: Path) -> None:
    # O_NOFOLLOW: the file cannot be swapped for a symlink between the walk and the copy.
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as src, open(target, "wb") as dst:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise ScorerFailed(f"{source}: not a regular file; not copied")
        shutil.copyfileobj(src, dst, 1024 * 1024)


def open_logprobs(path: Path, expected_shape: tuple[int, int, int]) -> np.memmap:
    """Map the child's OUT.npy read-only after checking it is a plain little-endian float32/float64 C-order array of
    exactly `expected_shape` and that the file holds exactly that many bytes. Never unpickles, never follows a
    symlink, never reads more than the header before mapping. ScorerFailed (naming the file) otherwise."""
    try:
        # O_NONBLOCK: a FIFO planted in place of the output must not block the judge on open.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ScorerFailed(f"{path.name}: the scorer exited without writing its output") from None
    except OSError as problem:
        raise ScorerFailed(f"{path.name}: cannot open the scorer's output: {problem.strerror or problem}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ScorerFailed(f"{path.name}: the scorer's output is not a regular file")
        dtype, shape, fortran_order, header_end = _read_npy_header(handle, path.name)
        if dtype not in ACCEPTED_DTYPES:
            raise ScorerFailed(f"{path.name}: dtype {dtype.str}, expected float32 or float64 log-probabilities")
        if fortran_order:
            raise ScorerFailed(f"{path.name}: Fortran-ordered array; expected a plain C-ordered [B, T, V] array")
        if tuple(shape) != tuple(expected_shape):
            raise ScorerFailed(f"{path.name}: shape {tuple(shape)}, expected [B, T, V] = {tuple(expected_shape)}")
        expected_bytes = header_end + int(np.prod(expected_shape)) * dtype.itemsize
        if info.st_size != expected_bytes:
            raise ScorerFailed(f"{path.name}: {info.st_size} bytes, expected exactly {expected_bytes} for that shape")
        return np.memmap(handle, dtype=dtype, mode="r", offset=header_end, shape=tuple(expected_shape), order="C")


def _read_npy_header(handle, name: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = npy.read_array_header_1_0(handle, max_header_size=MAX_HEADER_BYTES)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = npy.read_array_header_2_0(handle, max_header_size=MAX_HEADER_BYTES)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, SyntaxError) as problem:
        raise ScorerFailed(f"{name}: not a plain .npy array: {problem}") from None
    if dtype.hasobject:  # pickled objects: never
        raise ScorerFailed(f"{name}: object array; expected float log-probabilities")
    return dtype, tuple(shape), bool(fortran_order), handle.tell()


def check_values(logprobs: np.ndarray, name: str = "output") -> None:
    """ScorerFailed at the first NaN or +inf: a log-probability is finite, or -inf for an impossible token."""
    rows_per_block = max(1, VALUE_SCAN_BYTES // max(1, logprobs[0].nbytes)) if len(logprobs) else 1
    for start in range(0, len(logprobs), rows_per_block):
        block = np.asarray(logprobs[start : start + rows_per_block])
        bad = np.isnan(block) | np.isposinf(block)
        if bad.any():
            row, position, token = (int(i) for i in np.argwhere(bad)[0])
            raise ScorerFailed(
                f"{name}: log-probability {block[row, position, token]} at row {start + row}, position {position}, "
                f"token {token}; only finite values or -inf are allowed"
            )


class ScorerSession:
    """Calls one record's `score` command for one artifact, each call in a fresh private copy of the record.

    Use as a context manager: the temporary folder (copies, token files, outputs) is removed on exit.
    """

    def __init__(self, record_dir: Path, script: Path, artifact: Path, vocab_size: int, *,
                 timeout_s: float = 600.0, on_line: Callable[[str], None] | None = None,
                 env: dict[str, str] | None = None, hide: Sequence[Path] = ()):
        self.record_dir = Path(record_dir)
        self.hide = tuple(hide)  # kept for callers: the sandbox now shows the child nothing it was not given
        self.script_name = Path(script).relative_to(self.record_dir).as_posix()
        self.artifact_name = Path(artifact).relative_to(self.record_dir).as_posix()
        self.vocab_size = int(vocab_size)
        self.timeout_s = timeout_s
        self.on_line = on_line
        self.env = dict(env or {})
        self.calls: list[ScorerCall] = []
        self.network_note: str | None = None
        self._root: Path | None = None
        self._count = 0

    def __enter__(self) -> ScorerSession:
        self._root = Path(tempfile.mkdtemp(prefix="pg-probes-"))
        return self

    def __exit__(self, *exc_info) -> None:
        if self._root is not None:
            remove_tree(self._root)
            self._root = None

    @contextmanager
    def score(self, tokens: np.ndarray) -> Iterator[np.memmap]:
        """Run the scorer on int64 `tokens` [B, T]; yield its validated log-probabilities [B, T, V] (memory-mapped,
        read-only). The call's files are deleted when the block ends. Raises ScorerUnavailable / ScorerFailed."""
        if self._root is None:
            raise RuntimeError("ScorerSession must be used as a context manager")
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be [B, T], got shape {tokens.shape}")
        self._count += 1
        call_dir = self._root / call_folder_name(self._count)
        work, inbox, outbox = call_dir / "record", call_dir / "in", call_dir / "out"
        for folder in (work, inbox, outbox):
            folder.mkdir(parents=True)
        try:
            copy_record(self.record_dir, work, keep_artifact=self.artifact_name)
            tokens_path, out_path = inbox / "tokens.npy", outbox / "logprobs.npy"
            np.save(tokens_path, tokens, allow_pickle=False)
            shape = (tokens.shape[0], tokens.shape[1], self.vocab_size)
            argv = ["python", self.script_name, SCORE_COMMAND, "--artifact", self.artifact_name,
                    "--tokens", str(tokens_path), "--out", str(out_path)]
            # The child sees its copy and the tokens (read-only) and writes only out/; nothing else of the judge.
            result = run_sandboxed(argv, cwd=work, timeout_s=self.timeout_s, env=self.env, on_line=self.on_line,
                                   kill_grace_s=KILL_GRACE_S, inputs=[inbox], writable=[outbox],
                                   limits=call_limits(shape))
            self.network_note = result.note
            self._raise_for(result, out_path, work)
            logprobs = open_logprobs(out_path, shape)
            check_values(logprobs, out_path.name)
            self.calls.append(ScorerCall(rows=shape[0], positions=shape[0] * shape[1], wall_s=result.wall_s,
                                         output_bytes=out_path.stat().st_size))
            try:
                yield logprobs
            finally:
                del logprobs  # unmap before the file goes
        finally:
            remove_tree(call_dir)

    def _raise_for(self, result: SandboxResult, out_path: Path, work: Path) -> None:
        # Paths inside our temporary copy mean nothing to the reader (and differ every run).
        last = _last_lines(result.output_tail.replace(f"{work}{os.sep}", "").replace(str(out_path.parent), ".")
                           .replace(str(work.parent / "in"), "."))
        if result.timed_out:
            raise ScorerFailed(f"the scorer did not finish within {self.timeout_s:g} s (killed){last}")
        if result.killed:
            raise ScorerFailed(f"the scorer went over the sandbox's {result.killed} limit (killed){last}")
        if result.returncode != 0:
            if not out_path.exists() and looks_like_usage_error(result):
                raise ScorerUnavailable(f"{self.script_name} has no `score` command (usage error){last}")
            raise ScorerFailed(f"the scorer exited with code {result.returncode}{last}")


def remove_tree(path: Path) -> None:
    """Delete a folder the scorer wrote into, even where it took away write permission (chmod 500 on its copy)."""
    def make_writable_and_retry(function, failed_path, *_):
        try:
            os.chmod(os.path.dirname(failed_path), stat.S_IRWXU)
            if os.path.isdir(failed_path) and not os.path.islink(failed_path):
                os.chmod(failed_path, stat.S_IRWXU)
            function(failed_path)
        except OSError:
            pass  # gone already, or truly stuck: never let cleanup mask the verdict

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=make_writable_and_retry)


def _last_lines(tail: str, n: int = 3) -> str:
    lines = [line for line in tail.splitlines() if line.strip()][-n:]
    return (": " + " | ".join(line.strip()[:200] for line in lines)) if lines else ""
