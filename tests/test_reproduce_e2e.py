"""End to end: the real baseline train_gpt.py, a tiny byte-level dataset built here per CONTRACTS.md §1, a record
whose claims come from a first run of the baseline, then `verify reproduce` on it (within tolerance), and the
same record with its claims shifted (out of tolerance).

Training is made deterministic and short through the track's env table (a fixed ITERATIONS well inside a generous
wall-clock cap, one thread, a tiny model), which is exactly how reproduction passes settings to a record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.recordkit import cpu_track_toml
from tools.records.logparse import parse_log
from tools.verify import reproduce as rp
from tools.verify.commands.reproduce import command

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "train_gpt.py"
DATASET = "tiny_byte"
TRACK = "track_cpu_shakespeare"
SEEDS = (42, 1337)

TINY_ENV = {
    "MAX_WALLCLOCK_SECONDS": "120",  # never reached: ITERATIONS ends the run, so the step count is fixed
    "TORCH_NUM_THREADS": "1",
    "ITERATIONS": "12",
    "NUM_LAYERS": "1",
    "MODEL_DIM": "32",
    "NUM_HEADS": "2",
    "NUM_KV_HEADS": "1",
    "TRAIN_SEQ_LEN": "32",
    "TRAIN_BATCH_TOKENS": "256",
    "VAL_BATCH_TOKENS": "4096",
    "WARMUP_STEPS": "2",
    "TRAIN_LOG_EVERY": "4",
}

TRACKS_TOML = cpu_track_toml(TRACK, title="tiny CPU track for the reproduction test", dataset=DATASET,
                             tokenizer="byte", min_seeds=1, train_cap_s=120, env=TINY_ENV)

WORDS = ("the king and queen of rome speak to the fool in the court while the night falls on the castle and "
         "every soldier keeps his watch by the gate of the old city").split()


def _document(seed: int, n_words: int) -> bytes:
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, size=12)) for _ in range(n_words // 12)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _write_shard(path: Path, tokens: np.ndarray) -> None:
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(tokens))
    path.write_bytes(header.tobytes() + tokens.astype("<u2").tobytes())


def build_tiny_byte_dataset(folder: Path) -> None:
    """A contract §1 dataset with the byte tokenizer: BOS (256) + the document's bytes, per document."""
    folder.mkdir(parents=True)
    tokenizer = {"type": "byte", "vocab_size": 257, "bos_id": 256}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    documents = {"train": [_document(i, 600) for i in range(1, 5)], "val": [_document(100, 240)]}
    shards = {}
    for split, docs in documents.items():
        tokens = np.concatenate([np.array([256] + list(doc), dtype=np.int64) for doc in docs])
        name = f"{split}_000000.bin"
        _write_shard(folder / name, tokens)
        shards[split] = [{"file": name, "tokens": int(tokens.size),
                          "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}]
    (folder / "val_docs").mkdir()
    (folder / "val_docs" / "val0.txt").write_bytes(documents["val"][0])
    manifest = {
        "schema": 1, "dataset": DATASET,
        "source": {"kind": "synthetic", "name": "test_reproduce_e2e", "version": "0", "sha256": "0" * 64, "files": "*"},
        "split_rule": "the test says so",
        "documents": [], "tokenizer": {"kind": "byte", "file": "tokenizer.json", "vocab_size": 257, "bos_id": 256,
                                       "sha256": hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest()},
        "shards": shards,
        "train_tokens": shards["train"][0]["tokens"], "val_tokens": shards["val"][0]["tokens"],
        "train_bytes": sum(len(d) for d in documents["train"]), "val_bytes": len(documents["val"][0]),
        "val_documents": 1,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def first_run(work: Path, data_path: Path, seed: int) -> Path:
    """Train the baseline once, as a participant would, and return its log."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", **TINY_ENV,
           "SEED": str(seed), "DATA_PATH": str(data_path), "RUN_ID": f"claim_seed{seed}"}
    done = subprocess.run([sys.executable, "train_gpt.py"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return work / "logs" / f"claim_seed{seed}.txt"


def write_record(folder: Path, logs: dict[int, Path], bpb_shift: float = 0.0) -> None:
    folder.mkdir(parents=True)
    shutil.copyfile(BASELINE, folder / "train_gpt.py")
    results = {}
    for seed, path in logs.items():
        shutil.copyfile(path, folder / f"train_seed{seed}.log")
        log = parse_log(path)
        results[str(seed)] = {
            "val_bpb": round(log.val_bpb + bpb_shift, 8), "val_loss": log.val_loss, "steps": log.steps,
            "train_time_s": log.train_time_ms / 1000, "eval_time_s": log.eval_time_ms / 1000,
            "artifact_bytes": log.model_bytes, "code_bytes": log.code_bytes, "bytes_total": log.bytes_total,
            "log": f"train_seed{seed}.log", "code_sha256": log.code_sha256}
    bpbs = [r["val_bpb"] for r in results.values()]
    submission = {
        "schema": 1, "author": "Test", "github_id": "test", "name": folder.name, "blurb": "baseline, tiny",
        "date": "2026-01-15", "track": TRACK, "val_bpb": statistics.fmean(bpbs),
        "val_loss": statistics.fmean(r["val_loss"] for r in results.values()),
        "val_bpb_std": statistics.stdev(bpbs), "seeds": list(logs), "seed_results": results,
    }
    (folder / "submission.json").write_text(json.dumps(submission, indent=2) + "\n")
    (folder / "README.md").write_text("# tiny baseline\n")


@pytest.mark.slow
@pytest.mark.skipif(not BASELINE.is_file(), reason="the baseline train_gpt.py is not there yet")
def test_the_baseline_reproduces_its_own_claims(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "records" / TRACK).mkdir(parents=True)
    (root / "records" / "tracks.toml").write_text(TRACKS_TOML)
    data_path = root / "data" / "datasets" / DATASET
    build_tiny_byte_dataset(data_path)
    monkeypatch.setenv("PG_REPO_ROOT", str(root))
    monkeypatch.setenv("PG_DATASETS_ROOT", str(root / "data" / "datasets"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(rp.tempfile, "tempdir", None)

    work = tmp_path / "work"
    work.mkdir()
    shutil.copyfile(BASELINE, work / "train_gpt.py")
    logs = {seed: first_run(work, data_path, seed) for seed in SEEDS}
    honest = root / "records" / TRACK / "2026-01-15_tiny_baseline"
    write_record(honest, logs)

    result = CliRunner().invoke(command, [str(honest), "--no-track", "--json", "--margin", "60"])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert verdict["ok"] and verdict["checks"][0]["status"] == "pass", verdict["checks"][0]["message"]
    runs = verdict["stats"]["runs"]
    assert [run["seed"] for run in runs] == list(SEEDS)
    for run in runs:
        assert abs(run["delta_bpb"]) <= 0.005
        assert run["artifact_file_bytes"] > 0 and run["code_bytes"] == BASELINE.stat().st_size
        assert run["steps"] == int(TINY_ENV["ITERATIONS"])
    assert "seed 42 [1/2]: started" in result.stderr  # progress went to stderr, the verdict to stdout
    assert os.listdir(scratch) == []

    # The same runs, claimed 0.05 bpb better than they train: the reproduction must say so.
    inflated = root / "records" / TRACK / "2026-01-16_tiny_inflated"
    write_record(inflated, logs, bpb_shift=-0.05)
    result = CliRunner().invoke(command, [str(inflated), "--no-track", "--n", "1", "--margin", "60", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "verdict: FAILED (reproduction)" in result.stdout and "seed 42: reproduced val_bpb" in result.stdout
    assert os.listdir(scratch) == []
