"""Synthetic records in the public competition's formats (written here from the line shapes its logs use; no public
file is copied): the March format (script, a line of 100 '=', `key:value` lines) and the April format (a header of
100 '=', a `Hyperparameters:` block of `  key: value` lines, a `Source code:` block, `N/M val_loss: X` lines and
`stopping_early: wallclock_cap train_time: Tms step: N/M`).

    tree = public_tree(tmp_path)                       # <tmp>/records with no tracks.toml of its own
    folder = public_record(tree, "2026-04-01_x", logs={"train_seed42.log": april_log(seed=42, bpb=1.08)},
                           submission={...})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SEP = "=" * 100
SCRIPT = 'import os\n\nprint("train")\n'
REPO_ROOT = Path(__file__).resolve().parents[1]
PUBLIC_RULESET = REPO_ROOT / "records" / "parameter-golf.toml"


def public_tree(tmp: Path) -> Path:
    tree = tmp / "public" / "records"
    tree.mkdir(parents=True)
    return tree


def march_log(
    *, code: str = SCRIPT, seed: int | None = 1337, train_ms: int = 600_038, steps: int = 13780, bpb: float = 1.2244,
    model_bytes: int = 15_815_847, finals: tuple[str, ...] | None = None, dataset: str = "fineweb10B_sp1024",
) -> str:
    code_bytes = len(code.encode())
    lines = [code + "\n" + SEP, "Running Python 3.10.12", SEP,
             f"train_loader:dataset:{dataset} train_shards:80", "val_loader:shards pattern=x tokens:62021632"]
    if seed is not None:
        lines.append(f"seed:{seed}")
    lines += [f"step:{steps}/20000 val_loss:2.0727 val_bpb:{bpb + 0.0003:.4f} train_time:{train_ms}ms step_avg:43.54ms",
              f"stopping_early: wallclock_cap train_time:{train_ms}ms step:{steps}/20000",
              f"Serialized model int8+zlib: {model_bytes} bytes (payload:1 raw_torch:1 payload_ratio:3.91x)",
              f"Code size: {code_bytes} bytes",
              f"Total submission size int8+zlib: {model_bytes + code_bytes} bytes"]
    lines += list(finals) if finals is not None else [
        f"final_int8_zlib_roundtrip val_loss:2.0727 val_bpb:{bpb:.4f} eval_time:1401ms",
        f"final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:{bpb:.8f}",
    ]
    return "\n".join(lines) + "\n"


def april_log(
    *, seed: int = 42, bpb: float = 1.08553523, train_ms: int = 588_138, steps: int = 4988, code: str | None = SCRIPT,
    settings: Mapping[str, str] | None = None, model_bytes: int = 15_972_031, code_size: int = 15_516,
    compressed_code: int | None = None, finals: tuple[str, ...] | None = None, timestamps: bool = False,
) -> str:
    hyper = {"compressor": "brotli", "datasets_dir": "./data/datasets/fineweb10B_sp8192", "iterations": "20000",
             "logfile": f"logs/{seed}.txt", "run_id": str(seed), "seed": str(seed), "ttt_enabled": "False",
             **(settings or {})}
    lines = [SEP, "Hyperparameters:", *(f"  {key}: {value}" for key, value in sorted(hyper.items())), SEP]
    if code is not None:
        lines += ["Source code:", SEP, code + "\n" + SEP]  # printed with its own newline, as real logs are
    lines += ["Running Python 3.10.12", SEP, "train_shards: 128", "val_tokens: 40540160",
              "0/20000 val_loss: 9.0092 val_bpb: 3.4878",
              "500/20000 train_loss: 3.1000 train_time: 1.0m tok/s: 8000000",
              f"{steps}/20000 val_loss: 2.8177 val_bpb: {bpb + 0.005:.4f}",
              f"stopping_early: wallclock_cap train_time: {train_ms}ms step: {steps}/20000",
              "pre-quantization post-ema val_loss:2.81547748 val_bpb:1.08995907 eval_time:6003ms",
              "Serialized model: 135426937 bytes"]
    if compressed_code is None:
        lines += [f"Code size: {code_size} bytes"]
    else:
        lines += [f"Code size (uncompressed): {code_size} bytes", f"Code size (compressed): {compressed_code} bytes"]
    counted = compressed_code if compressed_code is not None else code_size
    lines += [f"Serialized model quantized+brotli: {model_bytes} bytes",
              f"Total submission size quantized+brotli: {model_bytes + counted} bytes"]
    lines += list(finals) if finals is not None else [
        "quantized val_loss:2.84757723 val_bpb:1.10238588 eval_time:7531ms",
        f"quantized_sliding_window val_loss:2.80405024 val_bpb:{bpb:.8f} eval_time:83990ms",
    ]
    text = "\n".join(lines) + "\n"
    if timestamps:
        text = "".join(f"1776142360.{index:03d} {line}\n" for index, line in enumerate(text.splitlines()))
    return text


def public_record(
    tree: Path, name: str, *, track: str = "track_10min_16mb", logs: Mapping[str, str],
    submission: Mapping[str, Any] | None, script: str | bytes | None = SCRIPT, script_name: str = "train_gpt.py",
    submission_name: str = "submission.json", extra: Mapping[str, str | bytes] | None = None,
) -> Path:
    folder = tree / track / name
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("# a record\n")
    if submission is not None:
        (folder / submission_name).write_text(json.dumps(submission, indent=1))
    if script is not None:
        data = script.encode() if isinstance(script, str) else script
        (folder / script_name).write_bytes(data)
    for relative, text in {**logs, **(extra or {})}.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
    return folder


def judge(folder: Path, tree: Path):
    """`verify record FOLDER --ruleset parameter-golf`, as a library call."""
    from tools.records.rulesets import load_ruleset
    from tools.verify.checks.verdict import verify_record

    return verify_record(folder, tracks=load_ruleset(str(PUBLIC_RULESET)), records_root=tree,
                         datasets_root=tree.parent / "no-datasets")


def statuses(report) -> dict[str, str]:
    return {check.id: check.status for check in report.checks}


def failing(report) -> set[str]:
    return {check.id for check in report.checks if check.status == "fail"}
