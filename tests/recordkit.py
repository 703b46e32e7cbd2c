"""Build synthetic record folders for tests: valid by default, with knobs that plant one defect each.

Usage (from any test):

    from tests.recordkit import make_repo_tree, make_record, repo_env

    def test_something(tmp_path, monkeypatch):
        root = make_repo_tree(tmp_path)                 # records/tracks.toml + data/datasets/<name>/manifest.json
        for key, value in repo_env(root).items():       # point tools.records.paths at the tree
            monkeypatch.setenv(key, value)
        good = make_record(root, name="2026-01-10_base", bpbs=(1.50, 1.51, 1.49))
        bad = make_record(root, name="2026-01-11_late", train_time_ms=180_300)   # 0.3 s over the CPU cap

The folder follows docs/CONTRACTS.md §6: README.md, submission.json (schema 1), train_gpt.py, one log per seed
(`train_seed<SEED>.log`, contract §2 format, embedding the script byte for byte) and, with `artifacts=True`,
`final_model_seed<SEED>.int8.ptz` files of exactly the logged model size. Every number in submission.json is
derived from what the logs print, so a default record passes every static check.

Defect knobs (all optional; per-seed knobs take a scalar for every seed or a {seed: value} mapping):

    script, code_lines        the train_gpt.py text / pad it to exactly N lines
    model_bytes               compressed model bytes per seed (logged; artifact files use it too)
    artifacts                 write artifact files; artifact_file_bytes={seed: n} makes a file disagree with its log
    train_time_ms, eval_time_ms, steps
    log_code                  {seed: code}: the source embedded in that seed's log (see change_line)
    log_overrides             {seed: {field: value}}: what a log prints (seed, val_bpb, val_loss, code_bytes,
                              code_sha256, model_bytes, bytes_total, dataset_name, manifest_sha256,
                              tokenizer_sha256, val_tokens, val_bytes); claims are still derived from the truth
    drop_log_lines            {seed: ("eval_time", ...)}: remove log lines starting with these prefixes
    truncate_log              {seed: n}: keep only the first n lines after the code separator
    claim_overrides           {seed: {SeedResult field: value}}: what submission.json claims for a seed
    submission_overrides      {Submission field: value}: top-level claims (val_bpb, track, seeds, ...)
    submission_edit           callable(dict) -> dict applied to the JSON object before writing
    submission_text           raw submission.json text (e.g. malformed JSON)
    missing                   file names not to write ("README.md", "train_seed42.log", ...)
    extra_files               {relative path: bytes | str}
    extra_logs                {file name: seed}: one more log for an already-run seed (a rerun of the same seed)
    symlink                   name of a symlink to plant in the record (points outside it)
    ship_tokenizer            also ship a tokenizer.model (a record with its own tokenizer)
    legacy                    a public-competition-style record: no schema field, no per-seed results, logs
                              without seed/dataset/code_sha256 lines
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import statistics
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

SEPARATOR = "=" * 100
DEFAULT_TRACK = "track_cpu_shakespeare"

# A tiny tracks.toml with the same track ids and rules as the real one (caps chosen so tests can cross them).
TRACKS_TOML = """\
[tracks.track_cpu_shakespeare]
title = "2 CPU cores, 180 s, Shakespeare"
hardware = "2 CPU cores"
nproc = 1
train_time_cap_s = 180
eval_time_cap_s = 60
artifact_cap_bytes = 16_000_000
code_line_cap = 1500
dataset = "shakespeare_sp1024"
tokenizer = "sp1024"
min_seeds = 3
ranked = true
reproducible_in_ci = true
reproduce_tolerance_bpb = 0.005

[tracks.track_cpu_shakespeare.significance]
metric = "val_bpb"
test = "one_sided_t"
alpha = 0.01
min_improvement = 0.005

[tracks.track_cpu_shakespeare.env]
MAX_WALLCLOCK_SECONDS = "180"
TORCH_NUM_THREADS = "2"

[tracks.track_10min_16mb]
title = "10 minutes on 8xH100 SXM, 16 MB artifact"
hardware = "8xH100 SXM"
nproc = 8
train_time_cap_s = 600
eval_time_cap_s = 600
artifact_cap_bytes = 16_000_000
code_line_cap = 1500
dataset = "fineweb10B_sp1024"
tokenizer = "sp1024"
min_seeds = 3
ranked = true
reproducible_in_ci = false
reproduce_tolerance_bpb = 0.005

[tracks.track_10min_16mb.significance]
metric = "val_bpb"
test = "one_sided_t"
alpha = 0.01
min_improvement = 0.005

[tracks.track_non_record_16mb]
title = "Unlimited compute, 16 MB artifact (not ranked against SOTA)"
hardware = "any"
nproc = 8
artifact_cap_bytes = 16_000_000
code_line_cap = 1500
dataset = "fineweb10B_sp1024"
tokenizer = "sp1024"
min_seeds = 1
ranked = false
reproducible_in_ci = false
reproduce_tolerance_bpb = 0.005

[tracks.track_non_record_16mb.significance]
metric = "val_bpb"
test = "one_sided_t"
alpha = 0.01
min_improvement = 0.005
"""

DATASET = "shakespeare_sp1024"
VAL_TOKENS = 150_001
VAL_BYTES = 600_123
TOKENIZER_BYTES = b"synthetic sentencepiece model for tests\n"

SCRIPT = '''\
"""A synthetic train_gpt.py for judge tests; it is never run."""

import os

SEED = int(os.environ.get("SEED", "1337"))
ITERATIONS = int(os.environ.get("ITERATIONS", "200"))


def main():
    print("train", SEED, ITERATIONS)


if __name__ == "__main__":
    main()
'''


def cpu_track_toml(track: str, *, title: str, dataset: str, tokenizer: str, min_seeds: int, train_cap_s: int,
                   env: Mapping[str, str] | None = None) -> str:
    """A tracks.toml with one small CPU track that the judge re-runs (reproducible_in_ci), for end-to-end tests."""
    text = f"""\
[tracks.{track}]
title = "{title}"
hardware = "2 CPU cores"
nproc = 1
train_time_cap_s = {train_cap_s}
eval_time_cap_s = 60
artifact_cap_bytes = 16_000_000
code_line_cap = 1500
dataset = "{dataset}"
tokenizer = "{tokenizer}"
min_seeds = {min_seeds}
ranked = true
reproducible_in_ci = true
reproduce_tolerance_bpb = 0.005

[tracks.{track}.significance]
metric = "val_bpb"
test = "one_sided_t"
alpha = 0.01
min_improvement = 0.005
"""
    if env is not None:
        text += f"\n[tracks.{track}.env]\n" + "".join(f'{key} = "{value}"\n' for key, value in env.items())
    return text


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def repo_env(root: Path) -> dict[str, str]:
    """Environment variables that point tools.records.paths at a tree made by make_repo_tree."""
    return {"PG_REPO_ROOT": str(root), "PG_DATASETS_ROOT": str(Path(root) / "data" / "datasets")}


def _canonical_json(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def tiny_manifest(dataset: str = DATASET) -> dict[str, Any]:
    """A contract-shaped (§1) manifest with small numbers; only its totals and hashes matter to the judge."""
    return {
        "schema": 1,
        "dataset": dataset,
        "source": {"kind": "synthetic", "name": "recordkit", "version": "0", "sha256": sha256_hex(b"src"), "files": "*"},
        "split_rule": "index % 10 == 0 is validation",
        "documents": [{"name": "val_doc.txt", "split": "val", "bytes": VAL_BYTES, "sha256": sha256_hex(b"val")}],
        "tokenizer": {
            "kind": "sentencepiece-bpe",
            "file": "tokenizer.model",
            "sha256": sha256_hex(TOKENIZER_BYTES),
            "vocab_size": 1024,
            "bos_id": 1,
        },
        "shards": {
            "train": [{"file": "train_000000.bin", "tokens": 1_000_000, "sha256": sha256_hex(b"train")}],
            "val": [{"file": "val_000000.bin", "tokens": VAL_TOKENS, "sha256": sha256_hex(b"valshard")}],
        },
        "train_tokens": 1_000_000,
        "val_tokens": VAL_TOKENS,
        "train_bytes": 4_000_000,
        "val_bytes": VAL_BYTES,
        "val_documents": 1,
        "overlap": {"shingle_bytes": 50, "val_shingles": 10, "val_shingles_in_train": 0, "fraction": 0.0,
                    "threshold": 0.01, "ok": True},
    }


def make_repo_tree(tmp: Path, *, tracks_toml: str = TRACKS_TOML, datasets: Iterable[str] = (DATASET,)) -> Path:
    """Write <tmp>/repo/records/tracks.toml (+ empty track folders) and a tiny manifest per dataset; return the root."""
    root = Path(tmp) / "repo"
    records = root / "records"
    records.mkdir(parents=True, exist_ok=True)
    (records / "tracks.toml").write_text(tracks_toml)
    for track_id in ("track_cpu_shakespeare", "track_10min_16mb", "track_non_record_16mb"):
        (records / track_id).mkdir(exist_ok=True)
    for dataset in datasets:
        folder = root / "data" / "datasets" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.json").write_bytes(_canonical_json(tiny_manifest(dataset)))
        (folder / "tokenizer.model").write_bytes(TOKENIZER_BYTES)
    return root


def manifest_facts(root: Path, dataset: str = DATASET) -> dict[str, Any]:
    """What a log must say about the dataset (sha256 of the manifest file, tokenizer sha256, val totals)."""
    path = Path(root) / "data" / "datasets" / dataset / "manifest.json"
    if path.is_file():
        manifest = json.loads(path.read_bytes())
        return {
            "dataset_name": dataset,
            "manifest_sha256": sha256_hex(path.read_bytes()),
            "tokenizer_sha256": manifest["tokenizer"]["sha256"],
            "val_tokens": manifest["val_tokens"],
            "val_bytes": manifest["val_bytes"],
        }
    # No local manifest (e.g. the GPU track's FineWeb): the numbers a manifest would have given.
    return {"dataset_name": dataset, "manifest_sha256": sha256_hex(dataset), "tokenizer_sha256": sha256_hex(TOKENIZER_BYTES),
            "val_tokens": VAL_TOKENS, "val_bytes": VAL_BYTES}


def change_line(text: str, line_number: int, new_line: str) -> str:
    """`text` with its 1-based line `line_number` replaced by `new_line` (a one-line code difference)."""
    lines = text.splitlines(keepends=True)
    lines[line_number - 1] = new_line.rstrip("\n") + "\n"
    return "".join(lines)


def pad_script(script: str, n_lines: int) -> str:
    """`script` padded with comment lines (or cut) to exactly `n_lines` lines."""
    lines = script.splitlines(keepends=True)
    if len(lines) >= n_lines:
        return "".join(lines[:n_lines])
    return "".join(lines) + "".join(f"# padding line {i}\n" for i in range(len(lines) + 1, n_lines + 1))


def default_bpbs(n: int, center: float = 1.5) -> tuple[float, ...]:
    spread = (0.0012, -0.0009, 0.0003, -0.0005, 0.0007, -0.0002, 0.0010, -0.0011)
    return tuple(round(center + spread[i % len(spread)] * (1 + i // len(spread)), 8) for i in range(n))


def _per_seed(value: Any, seed: int, index: int) -> Any:
    if isinstance(value, Mapping):
        return value.get(seed)
    if isinstance(value, (list, tuple)):
        return value[index]
    return value


def _log_name(seed: int, used: set[str]) -> str:
    name = f"train_seed{seed}.log"
    run = 2
    while name in used:
        name, run = f"train_seed{seed}_run{run}.log", run + 1
    used.add(name)
    return name


def _format_log(code: str, facts: Mapping[str, Any], *, legacy: bool) -> str:
    """A log in the contract §2 format (legacy: the public competition's lines only)."""
    f = facts
    steps, planned = f["steps"], f["planned_steps"]
    lines: list[str] = []
    if not legacy:
        lines += [
            f"run_id:{f['run_id']} seed:{f['seed']}",
            f"code_sha256:{f['code_sha256']} code_bytes:{f['code_bytes']}",
            'hardware: device:cpu cpu_model:"Synthetic CPU" cpu_cores:2 world_size:1',
            "software: torch:2.13.0 python:3.11.7 sentencepiece:0.2.1",
            f"dataset: name:{f['dataset_name']} manifest_sha256:{f['manifest_sha256']} tokenizer_sha256:{f['tokenizer_sha256']}",
            f"val_tokens:{f['val_tokens']} val_bytes:{f['val_bytes']}",
            "model_params:123456",
            f"hyperparameters: ITERATIONS={planned} SEED={f['seed']}",
        ]
    lines.append(f"step:0/{planned} val_loss:6.9315 val_bpb:3.9876 train_time:0ms step_avg:0.00ms")
    train_ms = f["train_time_ms"]
    for step in sorted({1, max(1, steps // 2), steps}):
        t = round(train_ms * step / steps)
        lines.append(f"step:{step}/{planned} train_loss:{4.0 - step / (planned + 1):.4f} train_time:{t}ms step_avg:{t / step:.2f}ms")
    lines.append(
        f"step:{steps}/{planned} val_loss:{f['val_loss'] + 0.001:.4f} val_bpb:{f['val_bpb'] + 0.0005:.4f} "
        f"train_time:{train_ms}ms step_avg:{train_ms / steps:.2f}ms"
    )
    if steps < planned:
        lines.append(f"stopping_early: wallclock_cap train_time:{train_ms}ms step:{steps}/{planned}")
    lines += [
        "peak memory allocated: 0 MiB",
        f"Serialized model int8+zlib: {f['model_bytes']} bytes",
        f"Code size: {f['code_bytes']} bytes",
        f"Total submission size int8+zlib: {f['bytes_total']} bytes",
        f"final_int8_zlib_roundtrip val_loss:{f['val_loss']:.4f} val_bpb:{f['val_bpb']:.4f} eval_time:{f['eval_time_ms']}ms",
        f"final_int8_zlib_roundtrip_exact val_loss:{f['val_loss']:.8f} val_bpb:{f['val_bpb']:.8f}",
    ]
    if not legacy:
        lines += [f"eval_time:{f['eval_time_ms']}ms", f"train_time:{train_ms}ms"]
    return code + "\n" + SEPARATOR + "\n" + "\n".join(lines) + "\n"


def _apply_line_defects(log_text: str, drop_prefixes: Iterable[str] | None, keep_lines: int | None) -> str:
    code, sep, tail = log_text.partition("\n" + SEPARATOR + "\n")
    lines = tail.splitlines(keepends=True)
    if drop_prefixes:
        prefixes = tuple(drop_prefixes)
        lines = [line for line in lines if not line.startswith(prefixes)]
    if keep_lines is not None:
        lines = lines[:keep_lines]
    return code + sep + "".join(lines)


def _submission_to_dict(submission: Any) -> dict[str, Any]:
    """Serialize through the schema module when it exists, so fixtures always match the real schema."""
    try:
        from tools.records.schema import submission_to_dict
    except ImportError:
        submission_to_dict = None
    if submission_to_dict is not None:
        return submission_to_dict(submission)
    out = {
        "schema": submission.schema,
        "author": submission.author,
        "github_id": submission.github_id,
        "name": submission.name,
        "blurb": submission.blurb,
        "date": submission.date.isoformat() if submission.date else None,
        "track": submission.track,
        "val_bpb": submission.val_bpb,
        "val_loss": submission.val_loss,
        "val_bpb_std": submission.val_bpb_std,
        "seeds": list(submission.seeds),
        "seed_results": {},
    }
    for seed, result in submission.seed_results.items():
        fields = dataclasses.asdict(result)
        fields.pop("seed")
        out["seed_results"][str(seed)] = fields
    return out


def _legacy_submission(name: str, date: dt.date, bpbs: list[float], losses: list[float], facts0: Mapping[str, Any]) -> dict:
    """The public competition's submission.json: headline numbers only, no schema, no per-seed results."""
    return {
        "author": "Test Author",
        "github_id": "test-author",
        "name": name,
        "blurb": "a legacy-style synthetic record",
        "date": f"{date.isoformat()}T00:00:00Z",
        "val_loss": round(statistics.fmean(losses), 8),
        "val_bpb": round(statistics.fmean(bpbs), 8),
        "bytes_total": facts0["bytes_total"],
        "bytes_code": facts0["code_bytes"],
    }


def make_record(
    root: Path,
    *,
    track: str = DEFAULT_TRACK,
    name: str | None = None,
    seeds: Iterable[int] = (42, 1337, 2025),
    bpbs: Iterable[float] | None = None,
    date: str | dt.date = "2026-01-15",
    script: str | None = None,
    code_lines: int | None = None,
    model_bytes: int | Mapping[int, int] = 150_000,
    artifacts: bool = False,
    artifact_file_bytes: Mapping[int, int] | None = None,
    train_time_ms: int | Mapping[int, int] = 175_000,
    eval_time_ms: int | Mapping[int, int] = 30_000,
    steps: int | Mapping[int, int] = 200,
    planned_steps: int = 200,
    log_code: Mapping[int, str] | None = None,
    log_overrides: Mapping[int, Mapping[str, Any]] | None = None,
    drop_log_lines: Mapping[int, Iterable[str]] | None = None,
    truncate_log: Mapping[int, int] | None = None,
    claim_overrides: Mapping[int, Mapping[str, Any]] | None = None,
    submission_overrides: Mapping[str, Any] | None = None,
    submission_edit: Callable[[dict], dict] | None = None,
    submission_text: str | None = None,
    missing: Iterable[str] = (),
    extra_files: Mapping[str, bytes | str] | None = None,
    extra_logs: Mapping[str, int] | None = None,
    symlink: str | None = None,
    ship_tokenizer: bool = False,
    legacy: bool = False,
    dataset: str | None = None,
) -> Path:
    """Write records/<track>/<name>/ under `root` (made by make_repo_tree) and return the folder."""
    date = dt.date.fromisoformat(date) if isinstance(date, str) else date
    name = name or f"{date.isoformat()}_synthetic"
    seeds = tuple(seeds)
    bpbs = tuple(bpbs) if bpbs is not None else default_bpbs(len(seeds))
    if len(bpbs) != len(seeds):
        raise ValueError(f"{len(seeds)} seeds but {len(bpbs)} bpbs")
    folder = Path(root) / "records" / track / name
    folder.mkdir(parents=True, exist_ok=False)
    missing = set(missing)

    script = script if script is not None else SCRIPT
    if code_lines is not None:
        script = pad_script(script, code_lines)
    script_bytes = script.encode("utf-8")
    dataset_facts = manifest_facts(root, dataset or _track_dataset(track))
    loss_per_bpb = VAL_BYTES / VAL_TOKENS * math.log(2)  # bpb = loss / ln2 * tokens / bytes

    used_names: set[str] = set()
    seed_results: dict[int, Any] = {}
    logged_bpbs: list[float] = []
    logged_losses: list[float] = []
    first_facts: dict[str, Any] = {}
    for index, seed in enumerate(seeds):
        bpb = round(bpbs[index], 8)
        loss = round(bpb * loss_per_bpb, 8)
        n_model = _per_seed(model_bytes, seed, index)
        truth = {
            "run_id": f"{name}_seed{seed}",
            "seed": seed,
            "val_bpb": bpb,
            "val_loss": loss,
            "steps": _per_seed(steps, seed, index),
            "planned_steps": planned_steps,
            "train_time_ms": _per_seed(train_time_ms, seed, index),
            "eval_time_ms": _per_seed(eval_time_ms, seed, index),
            "model_bytes": n_model,
            "code_bytes": len(script_bytes),
            "bytes_total": n_model + len(script_bytes),
            "code_sha256": sha256_hex(script_bytes),
            **dataset_facts,
        }
        printed = {**truth, **((log_overrides or {}).get(seed) or {})}
        code = (log_code or {}).get(seed, script)
        log_text = _format_log(code, printed, legacy=legacy)
        log_text = _apply_line_defects(log_text, (drop_log_lines or {}).get(seed), (truncate_log or {}).get(seed))
        log_name = "train.log" if legacy and len(seeds) == 1 else _log_name(seed, used_names)
        if log_name not in missing:
            (folder / log_name).write_text(log_text, encoding="utf-8")
        for extra_name, extra_seed in (extra_logs or {}).items():
            if extra_seed == seed:  # a real rerun: the same seed, not the same bytes (a byte copy counts once)
                (folder / extra_name).write_text(log_text + "rerun of the same seed\n", encoding="utf-8")
        if artifacts:
            size = (artifact_file_bytes or {}).get(seed, n_model)
            artifact = folder / f"final_model_seed{seed}.int8.ptz"
            if artifact.name not in missing:
                artifact.write_bytes(os.urandom(size))
        logged_bpbs.append(bpb)
        logged_losses.append(loss)
        first_facts = first_facts or truth
        claim = _seed_result(
            seed=seed,
            val_bpb=bpb,
            val_loss=loss,
            steps=truth["steps"],
            train_time_s=truth["train_time_ms"] / 1000,
            eval_time_s=truth["eval_time_ms"] / 1000,
            artifact_bytes=n_model,
            code_bytes=truth["code_bytes"],
            bytes_total=truth["bytes_total"],
            log=log_name,
            code_sha256=truth["code_sha256"],
        )
        overrides = (claim_overrides or {}).get(seed)
        seed_results[seed] = dataclasses.replace(claim, **overrides) if overrides else claim

    if submission_text is None:
        if legacy:
            obj = _legacy_submission(name, date, logged_bpbs, logged_losses, first_facts)
        else:
            submission = _submission(
                name=name,
                date=date,
                track=track,
                val_bpb=round(statistics.fmean(logged_bpbs), 8),
                val_loss=round(statistics.fmean(logged_losses), 8),
                val_bpb_std=round(statistics.stdev(logged_bpbs), 8) if len(logged_bpbs) > 1 else None,
                seeds=seeds,
                seed_results=seed_results,
            )
            if submission_overrides:
                submission = dataclasses.replace(submission, **submission_overrides)
            obj = _submission_to_dict(submission)
        if submission_edit is not None:
            obj = submission_edit(obj)
        submission_text = json.dumps(obj, indent=2) + "\n"

    files: dict[str, bytes | str] = {
        "README.md": f"# {name}\n\nA synthetic record written by tests/recordkit.py.\n",
        "submission.json": submission_text,
        "train_gpt.py": script_bytes,
    }
    if ship_tokenizer:
        files["tokenizer.model"] = TOKENIZER_BYTES
    files.update(extra_files or {})
    for relative, content in files.items():
        if relative in missing:
            continue
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    if symlink:
        os.symlink(Path(root).resolve() / "records" / "tracks.toml", folder / symlink)
    return folder


def _track_dataset(track: str) -> str:
    return DATASET if track == "track_cpu_shakespeare" else "fineweb10B_sp1024"


def _seed_result(**fields: Any) -> Any:
    from tools.records.model import SeedResult

    return SeedResult(**fields)


def _submission(*, name, date, track, val_bpb, val_loss, val_bpb_std, seeds, seed_results) -> Any:
    from tools.records.model import Submission

    return Submission(
        schema=1,
        author="Test Author",
        github_id="test-author",
        name=name,
        blurb="a synthetic record",
        date=date,
        track=track,
        val_bpb=val_bpb,
        val_loss=val_loss,
        val_bpb_std=val_bpb_std,
        seeds=seeds,
        seed_results=seed_results,
    )
