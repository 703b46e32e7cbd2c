"""The probes on the real baseline: train a tiny model with the repository's train_gpt.py on a tiny dataset, make
a record of it, and probe it through its own `score` command. An honest baseline passes all three probes; the same
artifact scored with the attention's causal mask switched off fails causality."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_probes_kit import SEQ_LEN, make_tree
from tools.records.logparse import parse_log
from tools.records.model import SeedResult, Submission
from tools.records.schema import submission_to_dict
from tools.verify.probes import probe_record

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "train_gpt.py"
TINY = {  # a model small enough to train in seconds on one loaded core
    "ITERATIONS": "20", "MODEL_DIM": "32", "NUM_LAYERS": "1", "NUM_HEADS": "2", "NUM_KV_HEADS": "1",
    "TRAIN_SEQ_LEN": str(SEQ_LEN), "TRAIN_BATCH_TOKENS": str(8 * SEQ_LEN), "MAX_WALLCLOCK_SECONDS": "0",
    "TORCH_NUM_THREADS": "1", "TRAIN_LOG_EVERY": "0",
    "EVAL_STRIDE": str(SEQ_LEN // 4),  # sliding-window evaluation: the judge must rebuild the same windows
}


def train_baseline(workdir: Path, dataset: Path, seed: int, script: bytes) -> tuple[Path, Path]:
    """Run the baseline trainer `script` (a snapshot: the file in the repository may change meanwhile); return
    (its log, its artifact)."""
    run_id = f"probe_test_seed{seed}"
    env = {**os.environ, **TINY, "DATA_PATH": str(dataset), "SEED": str(seed), "RUN_ID": run_id}
    env.pop("MLFLOW_TRACKING_URI", None)
    (workdir / "train_gpt.py").write_bytes(script)
    done = subprocess.run([sys.executable, "train_gpt.py"], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return workdir / "logs" / f"{run_id}.txt", workdir / "logs" / run_id / "final_model.int8.ptz"


def baseline_record(root: Path, name: str, seed: int, log: Path, artifact: Path, script: bytes) -> Path:
    """records/track_cpu_shakespeare/<name>/ holding the run, with submission.json made from its log."""
    folder = root / "records" / "track_cpu_shakespeare" / name
    folder.mkdir(parents=True)
    (folder / "train_gpt.py").write_bytes(script)
    shutil.copy(log, folder / f"train_seed{seed}.log")
    shutil.copy(artifact, folder / f"final_model_seed{seed}.int8.ptz")
    (folder / "README.md").write_text("# tiny baseline\n")
    parsed = parse_log(folder / f"train_seed{seed}.log")
    result = SeedResult(
        seed=seed, val_bpb=parsed.val_bpb, val_loss=parsed.val_loss, steps=parsed.steps,
        train_time_s=parsed.train_time_ms / 1000, eval_time_s=parsed.eval_time_ms / 1000,
        artifact_bytes=parsed.model_bytes, code_bytes=parsed.code_bytes, bytes_total=parsed.bytes_total,
        log=f"train_seed{seed}.log", code_sha256=parsed.code_sha256,
    )
    submission = Submission(
        schema=1, author="Test", github_id="test", name=name, blurb="tiny baseline", date=dt.date(2026, 3, 1),
        track="track_cpu_shakespeare", val_bpb=parsed.val_bpb, val_loss=parsed.val_loss, val_bpb_std=None,
        seeds=(seed,), seed_results={seed: result},
    )
    (folder / "submission.json").write_text(json.dumps(submission_to_dict(submission), indent=2) + "\n")
    return folder


@pytest.mark.slow
def test_baseline_passes_and_the_same_weights_without_a_causal_mask_fail(tmp_path, monkeypatch):
    root, dataset = make_tree(tmp_path, monkeypatch)
    work = tmp_path / "work"
    work.mkdir()
    script = BASELINE.read_bytes()
    log, artifact = train_baseline(work, dataset, 7, script)

    honest = baseline_record(root, "2026-03-01_baseline", 7, log, artifact, script)
    checks = {c.id: c for c in probe_record(honest, rng_seed=0, positions=8)}
    assert {k: c.status for k, c in checks.items()} == {"normalization": "pass", "causality": "pass",
                                                        "rescore": "pass"}, checks
    rescore = checks["rescore"].evidence["seeds"]["7"]
    assert rescore["seq_len"] == SEQ_LEN and rescore["stride"] == SEQ_LEN // 4 and abs(rescore["deltas"]["train_seed7.log"]) <= 1e-4
    # A transformer reads its whole window, across the document boundary too: legitimate, and reported.
    assert checks["causality"].evidence["seeds"]["7"]["cross_document"]["later_document_reads_earlier"] is True

    assert script.count(b"is_causal=True") == 1
    peeking = baseline_record(root, "2026-03-02_no_mask", 7, log, artifact,
                              script.replace(b"is_causal=True", b"is_causal=False"))
    checks = {c.id: c for c in probe_record(peeking, rng_seed=0, positions=8, rescore=False)}
    assert checks["causality"].status == "fail" and "look-ahead" in checks["causality"].message
    assert checks["normalization"].status == "pass"


def test_tiny_settings_are_real_hyperparameters_of_the_baseline():
    """Guard against the trainer renaming a knob (it would silently train a bigger, slower model): every tiny
    setting must be a field of the trainer's Hyperparameters."""
    source = BASELINE.read_text()
    fields = {f.lower() for f in TINY}
    missing = [f for f in fields if f"    {f}:" not in source]
    assert missing == [], missing
