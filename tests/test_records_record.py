"""tools.records.record: a record folder read as data, hostile input contained."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tools.records.model import RecordError
from tools.records.record import is_log_name, load_record

SEPARATOR = "=" * 100
SCRIPT = "print('train')\n"
SHA = hashlib.sha256(SCRIPT.encode()).hexdigest()
SEEDS = (42, 1337, 2025)


def log_text(seed: int, bpb: float) -> str:
    lines = [
        f"run_id:r{seed} seed:{seed}",
        f"code_sha256:{SHA} code_bytes:{len(SCRIPT)}",
        "step:100/100 train_loss:3.0 train_time:170000ms step_avg:1700ms",
        "Serialized model int8+zlib: 1000 bytes",
        f"Code size: {len(SCRIPT)} bytes",
        f"Total submission size int8+zlib: {1000 + len(SCRIPT)} bytes",
        f"final_int8_zlib_roundtrip_exact val_loss:{bpb * 1.6:.8f} val_bpb:{bpb:.8f}",
        "eval_time:20000ms",
        "train_time:170000ms",
    ]
    return SCRIPT + "\n" + SEPARATOR + "\n" + "\n".join(lines) + "\n"


def submission(bpbs: dict[int, float]) -> dict:
    return {
        "schema": 1, "author": "Ada", "github_id": "ada", "name": "Base", "blurb": "", "date": "2026-03-20",
        "track": "track_cpu", "val_bpb": sum(bpbs.values()) / len(bpbs), "val_loss": 2.4, "val_bpb_std": 0.001,
        "seeds": list(bpbs),
        "seed_results": {
            str(seed): {"val_bpb": bpb, "val_loss": bpb * 1.6, "steps": 100, "train_time_s": 170.0, "eval_time_s": 20.0,
                        "artifact_bytes": 1000, "code_bytes": len(SCRIPT), "bytes_total": 1000 + len(SCRIPT),
                        "log": f"train_seed{seed}.log", "code_sha256": SHA}
            for seed, bpb in bpbs.items()
        },
    }  # fmt: skip


def make_record(root: Path, track: str = "track_cpu", name: str = "2026-03-20_base") -> Path:
    folder = root / "records" / track / name
    folder.mkdir(parents=True)
    bpbs = {seed: 1.5 + i * 0.001 for i, seed in enumerate(SEEDS)}
    (folder / "README.md").write_text("# Base\n")
    (folder / "requirements.txt").write_text("torch\n")
    (folder / "train_gpt.py").write_text(SCRIPT)
    (folder / "submission.json").write_text(json.dumps(submission(bpbs)))
    for seed, bpb in bpbs.items():
        (folder / f"train_seed{seed}.log").write_text(log_text(seed, bpb))
        (folder / f"final_model_seed{seed}.int8.ptz").write_bytes(b"\x78\x9c" + bytes(998))
    return folder


def test_a_normal_record(tmp_path):
    folder = make_record(tmp_path)
    record = load_record(folder, tmp_path / "records")
    assert record.path == folder.resolve() and record.track_id == "track_cpu"
    assert record.submission is not None and record.submission_error is None
    assert record.submission.seeds == SEEDS
    assert record.script_path == folder.resolve() / "train_gpt.py"
    assert sorted(record.logs) == sorted(f"train_seed{seed}.log" for seed in SEEDS)
    assert {name: log.seed for name, log in record.logs.items()} == {f"train_seed{s}.log": s for s in SEEDS}
    assert all(log.code == SCRIPT for log in record.logs.values())
    assert record.logs["train_seed1337.log"].val_bpb == 1.501
    assert record.artifacts == {seed: folder.resolve() / f"final_model_seed{seed}.int8.ptz" for seed in SEEDS}
    assert "README.md" in record.files and "requirements.txt" in record.files
    assert record.files == tuple(sorted(record.files))
    assert record.log_errors == {} and record.symlinks == ()


def test_default_records_root_comes_from_paths(tmp_path, monkeypatch):
    folder = make_record(tmp_path)
    monkeypatch.setenv("PG_REPO_ROOT", str(tmp_path))
    assert load_record(folder).track_id == "track_cpu"
    monkeypatch.chdir(tmp_path)
    assert load_record(Path("records/track_cpu/2026-03-20_base")).path == folder.resolve()


def test_symlinks_are_listed_and_never_followed(tmp_path):
    folder = make_record(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("step:1/1 train_loss:1\nfinal_x_exact val_loss:0.1 val_bpb:0.1\n")
    outside_dir = tmp_path / "outside"
    outside_dir.mkdir()
    (outside_dir / "train_seed9.log").write_text(log_text(9, 0.5))
    (folder / "stolen.log").symlink_to(secret)
    (folder / "linked_dir").symlink_to(outside_dir, target_is_directory=True)
    (folder / "final_model_seed7.int8.ptz").symlink_to(secret)
    record = load_record(folder, tmp_path / "records")
    assert record.symlinks == ("final_model_seed7.int8.ptz", "linked_dir", "stolen.log")
    assert set(record.symlinks) <= set(record.files)
    assert "linked_dir/train_seed9.log" not in record.files  # the linked folder was not entered
    assert "stolen.log" not in record.logs and "symbolic link" in record.log_errors["stolen.log"]
    assert 7 not in record.artifacts


def test_symlinked_submission_and_script_are_not_read(tmp_path):
    folder = make_record(tmp_path)
    outside = tmp_path / "elsewhere.json"
    outside.write_text((folder / "submission.json").read_text())
    (folder / "submission.json").unlink()
    (folder / "submission.json").symlink_to(outside)
    (folder / "train_gpt.py").unlink()
    (folder / "train_gpt.py").symlink_to(tmp_path / "nowhere.py")
    record = load_record(folder, tmp_path / "records")
    assert record.submission is None and "symbolic link" in record.submission_error
    assert record.script_path is None and "train_gpt.py" in record.symlinks


def test_submission_problems_are_kept_not_raised(tmp_path):
    folder = make_record(tmp_path)
    (folder / "submission.json").write_text('{\n  "schema": 1,\n  "author": }\n')
    record = load_record(folder, tmp_path / "records")
    assert record.submission is None
    assert record.submission_error == f"{folder.resolve() / 'submission.json'}: line 3 column 13: Expecting value"
    document = json.loads(json.dumps(submission({42: 1.5})))
    document["seed_results"]["42"]["val_bpb"] = "1.5"
    (folder / "submission.json").write_text(json.dumps(document))
    record = load_record(folder, tmp_path / "records")
    assert record.submission_error.endswith("submission.json: seed_results.42.val_bpb: Input should be a valid number")
    (folder / "submission.json").unlink()
    record = load_record(folder, tmp_path / "records")
    assert record.submission is None and record.submission_error.endswith("submission.json: missing")


def test_unreadable_logs_are_recorded_per_file(tmp_path):
    folder = make_record(tmp_path)
    (folder / "train_seed1337.log").write_bytes(b"\x00\x01binary")
    (folder / "notes.txt").write_bytes(b"caf\xe9\n")
    (folder / "train_seed2025.log").write_text(log_text(2025, 1.5).split("final_")[0])  # truncated
    record = load_record(folder, tmp_path / "records")
    assert "binary file" in record.log_errors["train_seed1337.log"]
    assert "not UTF-8" in record.log_errors["notes.txt"]
    assert record.logs["train_seed2025.log"].val_bpb is None
    assert "val_bpb" in record.logs["train_seed2025.log"].missing
    assert record.logs["train_seed42.log"].val_bpb == 1.5


def test_logs_in_subfolders_and_which_names_are_logs(tmp_path):
    folder = make_record(tmp_path)
    (folder / "logs").mkdir()
    (folder / "logs" / "extra_run.txt").write_text(log_text(42, 1.5))
    (folder / "README.txt").write_text("about\n")
    record = load_record(folder, tmp_path / "records")
    assert "logs/extra_run.txt" in record.logs and "README.txt" not in record.logs
    assert "requirements.txt" not in record.logs and "logs/extra_run.txt" in record.files
    assert [is_log_name(n) for n in ("a.log", "b.TXT", "requirements.txt", "README.txt", "readme.md", "x.py")] == [
        True, True, False, False, False, False]


def test_missing_folder_is_an_error(tmp_path):
    (tmp_path / "records").mkdir()
    with pytest.raises(RecordError, match="no such record folder"):
        load_record(tmp_path / "records" / "track_cpu" / "nope", tmp_path / "records")


def test_a_file_is_not_a_record(tmp_path):
    folder = make_record(tmp_path)
    with pytest.raises(RecordError, match="not a folder"):
        load_record(folder / "README.md", tmp_path / "records")


def test_folder_outside_the_records_root_is_an_error(tmp_path):
    outside = make_record(tmp_path / "elsewhere")
    (tmp_path / "records").mkdir()
    with pytest.raises(RecordError, match="outside the records root"):
        load_record(outside, tmp_path / "records")
    # A path that looks inside but resolves outside (a symlinked record folder) is outside too.
    (tmp_path / "records" / "track_cpu").mkdir()
    (tmp_path / "records" / "track_cpu" / "sneaky").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RecordError, match="outside the records root"):
        load_record(tmp_path / "records" / "track_cpu" / "sneaky", tmp_path / "records")
    with pytest.raises(RecordError, match="outside the records root"):
        load_record(tmp_path / "records" / "track_cpu" / ".." / ".." / "elsewhere", tmp_path / "records")


def test_folder_at_the_wrong_depth_is_an_error(tmp_path):
    folder = make_record(tmp_path)
    with pytest.raises(RecordError, match="<track>/<record>"):
        load_record(folder.parent, tmp_path / "records")
    deeper = folder / "nested"
    deeper.mkdir()
    with pytest.raises(RecordError, match="<track>/<record>"):
        load_record(deeper, tmp_path / "records")


def test_too_many_files_is_refused(tmp_path, monkeypatch):
    import tools.records.record as record_module

    folder = make_record(tmp_path)
    monkeypatch.setattr(record_module, "MAX_RECORD_FILES", 5)
    with pytest.raises(RecordError, match="more than 5 files"):
        load_record(folder, tmp_path / "records")


def test_a_fifo_posing_as_a_log_does_not_hang(tmp_path):
    folder = make_record(tmp_path)
    os.mkfifo(folder / "train_seed9.log")
    record = load_record(folder, tmp_path / "records")
    assert "not a regular file" in record.log_errors["train_seed9.log"]


def test_a_record_built_by_the_shared_fixture_kit(tmp_path, monkeypatch):
    from tests import recordkit
    root = recordkit.make_repo_tree(tmp_path)
    for key, value in recordkit.repo_env(root).items():
        monkeypatch.setenv(key, value)
    folder = recordkit.make_record(root, name="2026-01-10_base", artifacts=True)
    record = load_record(folder)
    assert record.submission_error is None and record.log_errors == {}
    for seed, result in record.submission.seed_results.items():
        log = record.logs[result.log]
        assert (log.seed, log.val_bpb, log.code_sha256) == (seed, result.val_bpb, result.code_sha256)
        assert log.warnings == () and log.missing == ()
    assert set(record.artifacts) == set(record.submission.seeds)
    legacy = recordkit.make_record(root, name="2026-01-11_legacy", legacy=True)
    record = load_record(legacy)
    assert record.submission.legacy and "seeds" in record.submission.unknown_fields
    assert all(log.val_bpb is not None for log in record.logs.values())
