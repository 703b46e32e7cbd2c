"""tools.verify.probes.scorer: what the judge accepts back from a record's scorer, and what it copies for it.

The scorer is hostile: its output file may be a pickle, a symlink, an array of the wrong shape or order, or carry
trailing bytes; each must be refused with a message naming the problem, before any arithmetic."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from tools.verify.probes.scorer import (
    ScorerFailed,
    check_values,
    copy_record,
    has_score_entry_point,
    looks_like_usage_error,
    open_logprobs,
    remove_tree,
)
from tools.verify.sandbox import SandboxResult

SHAPE = (2, 3, 5)


def save(path: Path, array: np.ndarray, **options) -> Path:
    np.save(path, array, **options)
    return path


def good_array() -> np.ndarray:
    return np.log(np.full(SHAPE, 0.2, dtype=np.float32))


def test_a_plain_array_is_mapped_read_only(tmp_path):
    mapped = open_logprobs(save(tmp_path / "out.npy", good_array()), SHAPE)
    assert mapped.shape == SHAPE and mapped.dtype == np.float32 and not mapped.flags.writeable
    assert np.array_equal(mapped, good_array())
    float64 = open_logprobs(save(tmp_path / "out64.npy", good_array().astype(np.float64)), SHAPE)
    assert float64.dtype == np.float64


@pytest.mark.parametrize("make,expected", [
    (lambda p: save(p, np.array([{"x": 1}], dtype=object), allow_pickle=True), "object array"),
    (lambda p: save(p, np.asfortranarray(good_array())), "Fortran-ordered"),
    (lambda p: save(p, good_array()[:, :2]), "shape (2, 2, 5)"),
    (lambda p: save(p, good_array().astype(">f4")), "dtype >f4"),
    (lambda p: save(p, good_array().astype(np.float16)), "dtype <f2"),
    (lambda p: save(p, good_array().astype(np.int32)), "dtype <i4"),
    (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "not a plain .npy array"),
    (lambda p: p.write_bytes(b""), "not a plain .npy array"),
])
def test_output_that_is_not_a_plain_float_array_of_the_right_shape_is_refused(tmp_path, make, expected):
    path = tmp_path / "out.npy"
    make(path)
    with pytest.raises(ScorerFailed, match=expected.replace("(", r"\(").replace(")", r"\)")):
        open_logprobs(path, SHAPE)


def test_trailing_bytes_are_refused(tmp_path):
    path = save(tmp_path / "out.npy", good_array())
    with open(path, "ab") as handle:
        handle.write(b"\0" * 64)
    with pytest.raises(ScorerFailed, match="expected exactly"):
        open_logprobs(path, SHAPE)


def test_an_oversized_header_is_refused_without_reading_it(tmp_path):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_2_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": SHAPE,
                                                   "padding": " " * 100_000})
    path = tmp_path / "out.npy"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ScorerFailed, match="not a plain .npy array"):
        open_logprobs(path, SHAPE)


def test_symlinks_and_missing_files_are_refused(tmp_path):
    target = save(tmp_path / "real.npy", good_array())
    link = tmp_path / "out.npy"
    os.symlink(target, link)
    with pytest.raises(ScorerFailed, match="cannot open"):
        open_logprobs(link, SHAPE)
    with pytest.raises(ScorerFailed, match="exited without writing its output"):
        open_logprobs(tmp_path / "never.npy", SHAPE)
    os.mkfifo(tmp_path / "fifo.npy")
    with pytest.raises(ScorerFailed, match="not a regular file"):
        open_logprobs(tmp_path / "fifo.npy", SHAPE)


def test_values_must_be_finite_or_minus_infinity():
    values = good_array()
    values[1, 2, 0] = -np.inf
    check_values(values)  # an impossible token is allowed
    values[1, 2, 3] = np.inf
    with pytest.raises(ScorerFailed, match="inf at row 1, position 2, token 3"):
        check_values(values)
    values[1, 2, 3] = np.nan
    with pytest.raises(ScorerFailed, match="nan at row 1, position 2, token 3"):
        check_values(values)


def test_copy_leaves_out_symlinks_and_the_other_seeds_artifacts(tmp_path):
    record = tmp_path / "record"
    (record / "sub").mkdir(parents=True)
    (record / "train_gpt.py").write_text("print()\n")
    (record / "sub" / "helper.py").write_text("X = 1\n")
    (record / "final_model_seed1.npy").write_bytes(b"one")
    (record / "final_model_seed2.npy").write_bytes(b"two")
    os.symlink("/etc/hostname", record / "stolen.txt")
    os.symlink(tmp_path, record / "linked_dir")
    copy = tmp_path / "copy"
    copy_record(record, copy, keep_artifact="final_model_seed1.npy")
    copied = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*"))
    assert copied == ["final_model_seed1.npy", "sub", "sub/helper.py", "train_gpt.py"]
    with pytest.raises(ScorerFailed, match="more than 5 bytes"):
        copy_record(record, tmp_path / "copy2", keep_artifact="final_model_seed1.npy", max_bytes=5)


def test_entry_point_and_usage_error_detection():
    assert has_score_entry_point('if argv[0] == "score": parse("--artifact", "--tokens", "--out")')
    assert not has_score_entry_point("train()  # the public script: no score command")
    usage = SandboxResult(2, False, 0.1, "usage: train_gpt.py [-h]\nerror: unrecognized arguments: score", True, "")
    assert looks_like_usage_error(usage)
    crash = SandboxResult(1, False, 0.1, "Traceback ...\nRuntimeError: usage: of memory", True, "")
    assert not looks_like_usage_error(crash)


def test_remove_tree_removes_what_the_scorer_locked(tmp_path):
    """A scorer may chmod its copy read-only; cleanup must still remove it (meaningful when not run as root)."""
    locked = tmp_path / "call" / "record" / "sub"
    locked.mkdir(parents=True)
    (locked / "file").write_text("x")
    os.chmod(locked, 0o500)
    os.chmod(locked.parent, 0o500)
    remove_tree(tmp_path / "call")
    assert not (tmp_path / "call").exists()
    remove_tree(tmp_path / "never-existed")  # nothing to do is not an error
