"""A service run becomes a record (tools/service/record.py), judged like any record (tools.verify.checks.verdict).

Records are assembled from synthetic seed runs (the stored RunResult of tools/service/runner.py, with a real
Evaluation, and a small fake model file) on the tiny byte dataset of tests/test_service_kit.py, under the committed
records/tracks.toml. An honest record passes every static check that applies; each edit after assembly fails the
check that owns it; runs that cannot make an honest record are refused before anything is written; the judges that
run record code say they do not apply on this track. One slow test goes through real sandboxed runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import zlib
from pathlib import Path

import pytest

from data.tokenization import ByteTokenizer
from tests.test_service_kit import honest_code, tiny_dataset
from tools.records.logparse import SEPARATOR, parse_log
from tools.service.evaluation import Check, Evaluation
from tools.service.record import TRACK_ID, SeedRun, assemble_service_record, judge_service_record
from tools.service.runner import RunResult

REPO = Path(__file__).resolve().parents[1]
SEEDS = (42, 1337, 2025)
CODE = honest_code()
ALL_CHECKS_PASS = {"files", "schema", "track", "code_lines", "artifact_bytes", "train_time", "eval_time", "hardware",
                   "claims_match_logs", "code_matches_logs", "config_matches_logs", "seeds_distinct", "min_seeds",
                   "dataset"}


@pytest.fixture
def world(tmp_path):
    return record_world(tmp_path)


def record_world(tmp_path: Path):
    """(records dir with the committed track table, the byte dataset named as the track's, a folder for models)."""
    records = tmp_path / "records"
    records.mkdir()
    shutil.copyfile(REPO / "records" / "tracks.toml", records / "tracks.toml")
    data = tmp_path / "data"
    data.mkdir()
    dataset = tiny_dataset(tmp_path / "build").rename(data / "shakespeare_bytes")
    models = tmp_path / "models"
    models.mkdir()
    return records, dataset, models


def val_bytes_of(dataset: Path) -> int:
    return json.loads((dataset / "manifest.json").read_text())["val_bytes"]


def seed_run(world, seed: int, val_bpb: float, *, model: bytes | None = None, status: str = "succeeded",
             training_s: float = 178.4, eval_s: float = 31.2, steps: int = 812, label: str | None = None,
             **result_overrides) -> SeedRun:
    """A stored run result of the shape tools/service/runner.py keeps, and its kept model file."""
    _, dataset, models = world
    val = val_bytes_of(dataset)
    model = model if model is not None else hashlib.sha256(f"model {seed}".encode()).digest() * 400
    path = models / f"{seed}-{len(os.listdir(models))}.pt2"
    path.write_bytes(model)
    checks = (Check("normalization", True, "worst |logsumexp| 2.2e-16 over 9,216 positions"),
              Check("causality", True, "64 probes (copies and changed futures) matched their originals"),
              Check("finite", True, "every validation byte has a non-zero probability"))
    evaluation = Evaluation(val_bpb, checks, calls=2, probes=64, windows=-(-val // 256), wall_s=eval_s,
                            detail={"val_loss_nats_per_byte": val_bpb * math.log(2), "val_bytes": val,
                                    "rows_per_call": 512})
    result = RunResult(status=status, reason="scored by the service", val_bpb=val_bpb,
                       reported={"val_bpb": val_bpb, "total_steps": steps}, reported_val_bpb=val_bpb, steps=steps,
                       training_s=training_s, reported_training_s=training_s - 2.0, eval_s=eval_s,
                       wall_s=training_s + eval_s + 1.0, output_tail=["..."], evaluation=evaluation.to_dict(),
                       isolation="bubblewrap", model_zlib_bytes=len(zlib.compress(model, 9))).to_dict()
    result.update(result_overrides)
    started = 1_796_000_000.0 + seed
    return SeedRun(seed, label or f"alice/run-{seed}", result, started, started + training_s + eval_s + 1.0, path)


def assemble(world, runs, *, code: str = CODE, name: str = "Byte trigram", date: str = "2026-12-03", **options):
    records, dataset, _ = world
    return assemble_service_record(code, runs, records_dir=records, dataset_dir=dataset, author="alice",
                                   github_id="alice-gh", name=name, blurb="A two-byte-context embedding model.",
                                   date=date, **options)


def honest_runs(world, base: float = 2.4) -> list[SeedRun]:
    return [seed_run(world, seed, base + 0.001 * i) for i, seed in enumerate(SEEDS)]


def judge(world, folder: Path):
    return judge_service_record(folder, dataset_dir=world[1])


def failing(report) -> set[str]:
    return {check.id for check in report.checks if check.status == "fail"}


def statuses(report) -> dict[str, str]:
    return {check.id: check.status for check in report.checks}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


# -- an honest record ----------------------------------------------------------------------------------------------


def test_an_assembled_record_passes_every_static_check_that_applies(world):
    records, dataset, _ = world
    runs = honest_runs(world)
    folder = assemble(world, runs)
    assert folder == records / TRACK_ID / "2026-12-03_byte-trigram"
    assert sorted(os.listdir(folder)) == ["README.md", "submission.json", "train.py", "train_seed1337.log",
                                          "train_seed2025.log", "train_seed42.log"]
    assert not [name for name in os.listdir(folder.parent) if name.startswith(".")]  # no staging left behind
    assert (folder / "train.py").read_bytes() == CODE.encode("utf-8")

    report = judge(world, folder)
    assert report.ok, [(c.id, c.message) for c in report.checks if c.status == "fail"]
    seen = statuses(report)
    assert {check for check, status in seen.items() if status == "pass"} == ALL_CHECKS_PASS, seen
    assert seen["significance"] == "skip" and "first record of track_service_bytes" in report.get("significance").message
    assert seen["score_progression"] == "skip"  # the service scores once, after training: nothing to compare
    assert "scored all of shakespeare_bytes" in report.get("dataset").message
    assert "3 logs ran the same 1 settings" in report.get("config_matches_logs").message  # PG_TIME_BUDGET
    assert "train.py" in report.get("code_matches_logs").message
    assert report.stats["n"] == 3 and report.stats["mean"] == pytest.approx(2.401)


def test_the_logs_are_the_contract_format_with_the_services_lines(world):
    _, dataset, _ = world
    runs = honest_runs(world)
    folder = assemble(world, runs)
    text = (folder / "train_seed1337.log").read_text()
    code, _, lines = text.partition("\n" + SEPARATOR + "\n")
    assert code == CODE  # the exact bytes of train.py, then the separator
    manifest_sha = hashlib.sha256((dataset / "manifest.json").read_bytes()).hexdigest()
    model = runs[1].model_path.read_bytes()
    model_bytes, code_bytes = len(zlib.compress(model, 9)), len(CODE.encode("utf-8"))
    val = val_bytes_of(dataset)
    assert f"dataset: name:shakespeare_bytes manifest_sha256:{manifest_sha} " \
           f"tokenizer_sha256:{hashlib.sha256(ByteTokenizer.model_bytes).hexdigest()}\n" in lines
    assert f"\nval_tokens:{val} val_bytes:{val}\n" in lines
    assert f"\nSerialized model export+zlib: {model_bytes} bytes\nCode size: {code_bytes} bytes\n" \
           f"Total submission size export+zlib: {model_bytes + code_bytes} bytes\n" in lines
    loss = f"{2.401 * math.log(2):.8f}"  # nats per byte = bpb * ln 2
    assert f"\nfinal_service_exact val_loss:{loss} val_bpb:2.40100000\n" in lines
    assert re.search(r"\nservice: harness_sha256:[0-9a-f]{64} scorer_sha256:[0-9a-f]{64} worker:local "
                     r"isolation:bubblewrap normalization:pass causality:pass finite:pass probes:64 calls:2 "
                     r"windows:\d+ rows_per_call:512 rounds:1 reported_bpb:2.40100000 reported_mismatch:false\n", lines)
    assert "\nstep:812/812 train_time:178400ms\n" in lines and lines.endswith("+00:00\n")
    parsed = parse_log(folder / "train_seed1337.log")
    assert (parsed.run_id, parsed.seed, parsed.steps, parsed.val_bpb) == ("alice/run-1337", 1337, 812, 2.401)
    assert (parsed.train_time_ms, parsed.eval_time_ms, parsed.model_bytes) == (178_400, 31_200, model_bytes)
    assert parsed.hardware["device"] == "cpu" and parsed.hardware["world_size"] == "1"
    assert not parsed.warnings and parsed.contract_format

    submission = json.loads((folder / "submission.json").read_text())
    assert submission["track"] == TRACK_ID and submission["seeds"] == list(SEEDS)
    assert submission["val_bpb"] == 2.401 and submission["val_bpb_std"] == 0.001
    result = submission["seed_results"]["1337"]
    assert result == {"val_bpb": 2.401, "val_loss": float(loss), "steps": 812, "train_time_s": 178.4,
                      "eval_time_s": 31.2, "artifact_bytes": model_bytes, "code_bytes": code_bytes,
                      "bytes_total": model_bytes + code_bytes, "log": "train_seed1337.log",
                      "code_sha256": hashlib.sha256(CODE.encode()).hexdigest()}
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# Byte trigram\n") and "| 1337 | alice/run-1337 | 2.40100000 |" in readme
    assert "## How it was scored" in readme and "A two-byte-context embedding model." in readme


def test_a_later_record_is_tested_against_the_tracks_sota(world):
    first = assemble(world, honest_runs(world, 2.4), name="first")
    assert judge(world, first).ok
    better = assemble(world, [seed_run(world, seed, 2.30 + 0.0004 * i) for i, seed in enumerate(SEEDS)],
                      name="better", date="2026-12-04")
    report = judge(world, better)
    assert report.get("significance").status == "pass" and "2026-12-03_first" in report.get("significance").message
    same = assemble(world, honest_runs(world, 2.4), name="same again", date="2026-12-05")
    assert failing(judge(world, same)) == {"significance"}  # valid, but not significantly better: a non-record


def test_training_past_the_budget_warns_within_the_services_grace_and_fails_beyond(world):
    late = assemble(world, [seed_run(world, seed, 2.4 + 0.001 * i, training_s=183.0)
                            for i, seed in enumerate(SEEDS)], name="late")
    report = judge(world, late)
    assert report.ok and report.get("train_time").status == "warn"
    assert "3.000 s past the cap 180 s, within the 30 s grace" in report.get("train_time").message
    later = assemble(world, [seed_run(world, seed, 2.4 + 0.001 * i, training_s=211.0, eval_s=241.0)
                             for i, seed in enumerate(SEEDS)], name="later")
    assert {"train_time", "eval_time"} <= failing(judge(world, later))


# -- edits after assembly fail the check that owns them ------------------------------------------------------------


def test_train_py_edited_after_assembly_fails_code_matches_logs(world):
    folder = assemble(world, honest_runs(world))
    (folder / "train.py").write_text(CODE.replace("lr=3e-3", "lr=4e-3"))
    report = judge(world, folder)
    assert "code_matches_logs" in failing(report)
    assert "embedded code differs from train.py" in report.get("code_matches_logs").message


def test_a_lowered_claim_in_submission_json_fails_claims_match_logs(world):
    folder = assemble(world, honest_runs(world))
    edit(folder / "submission.json", '"val_bpb": 2.401,', '"val_bpb": 2.301,')  # the headline comes first
    report = judge(world, folder)
    assert failing(report) == {"claims_match_logs"}
    assert "submission.json: val_bpb 2.301 but the seeds' logged mean is 2.40100000" in \
        report.get("claims_match_logs").message
    seed_claim = assemble(world, honest_runs(world), name="seed claim")
    edit(seed_claim / "submission.json", '"val_bpb": 2.402,', '"val_bpb": 2.302,')
    report = judge(world, seed_claim)
    assert failing(report) == {"claims_match_logs"}
    assert "seed 2025: val_bpb 2.302 but train_seed2025.log says 2.40200000" in report.get("claims_match_logs").message


def test_an_edited_final_line_fails_claims_match_logs(world):
    folder = assemble(world, honest_runs(world))
    edit(folder / "train_seed42.log", "val_bpb:2.40000000", "val_bpb:2.10000000")
    report = judge(world, folder)
    assert "claims_match_logs" in failing(report)
    assert "seed 42: val_bpb 2.4 but train_seed42.log says 2.10000000" in report.get("claims_match_logs").message


def test_a_missing_seed_log_fails_and_so_do_fewer_seeds_than_the_track_needs(world):
    folder = assemble(world, honest_runs(world))
    (folder / "train_seed2025.log").unlink()
    report = judge(world, folder)
    assert {"claims_match_logs", "min_seeds"} <= failing(report)
    assert "seed 2025's log train_seed2025.log is not in the record" in report.get("claims_match_logs").message
    two = assemble(world, honest_runs(world)[:2], name="two seeds")
    report = judge(world, two)
    assert failing(report) == {"min_seeds"}
    assert "2 scored seed(s) (42, 1337) < track minimum 3" in report.get("min_seeds").message


def test_a_model_over_the_cap_fails_artifact_bytes(world):
    huge = os.urandom(16_000_001)  # incompressible: zlib makes it a little larger still
    runs = honest_runs(world)
    runs[1] = seed_run(world, 1337, 2.401, model=huge)
    folder = assemble(world, runs)
    report = judge(world, folder)
    assert failing(report) == {"artifact_bytes"}
    assert "train_seed1337.log (logged total)" in report.get("artifact_bytes").message
    assert "> cap 16,000,000" in report.get("artifact_bytes").message


def test_a_seed_log_from_other_code_fails_code_matches_logs(world):
    records, _, _ = world
    folder = assemble(world, honest_runs(world))
    other = assemble(world, honest_runs(world), code=CODE.replace("lr=3e-3", "lr=5e-3"), name="other code")
    shutil.copyfile(other / "train_seed2025.log", folder / "train_seed2025.log")
    report = judge(world, folder)
    assert "code_matches_logs" in failing(report)
    message = report.get("code_matches_logs").message
    assert message.startswith("train_seed2025.log: embedded code differs from train.py")
    assert "code_sha256" in " ".join(report.get("code_matches_logs").evidence["problems"])


# -- what the assembler refuses: nothing is written ----------------------------------------------------------------


def nothing_written(world) -> bool:
    track = world[0] / TRACK_ID
    return not track.exists() or not os.listdir(track)


@pytest.mark.parametrize(("change", "refusal"), [
    (lambda runs, world: runs.__setitem__(1, seed_run(world, 1337, 2.4, status="failed",
                                                       reason="causality check failed: 3 of 64 probes moved")),
     r"seed 1337 \(alice/run-1337\) did not succeed \(failed: causality check failed"),
    (lambda runs, world: runs.__setitem__(2, seed_run(world, 2025, 2.4, status="timed_out", reason="killed at 450 s")),
     r"seed 2025 \(alice/run-2025\) did not succeed \(timed_out: killed at 450 s\)"),
    (lambda runs, world: runs.__setitem__(2, seed_run(world, 42, 2.41, label="alice/run-9")),
     r"seed 42 is given more than once"),
    (lambda runs, world: runs[0].model_path.unlink(), r"seed 42 \(alice/run-42\): the kept model .* is missing"),
    (lambda runs, world: runs[0].model_path.write_bytes(b"another model"), r"not the model that was scored"),
    (lambda runs, world: runs[0].result["evaluation"].update(val_bytes=7), r"scored on 7 validation bytes"),
    (lambda runs, world: runs[0].result.update(steps=None), r"reported no total_steps"),
    (lambda runs, world: runs.clear(), r"no seed runs"),
])
def test_runs_that_cannot_make_an_honest_record_are_refused(world, change, refusal):
    runs = honest_runs(world)
    change(runs, world)
    with pytest.raises(ValueError, match=refusal):
        assemble(world, runs)
    assert nothing_written(world)


def test_a_record_folder_is_never_overwritten_and_a_bad_date_or_name_is_refused(world):
    folder = assemble(world, honest_runs(world))
    before = (folder / "submission.json").read_bytes()
    with pytest.raises(ValueError, match="already exists"):
        assemble(world, honest_runs(world, 2.0))
    assert (folder / "submission.json").read_bytes() == before
    with pytest.raises(ValueError, match="date: expected YYYY-MM-DD"):
        assemble(world, honest_runs(world), date="03/12/2026")
    with pytest.raises(ValueError, match="name: "):
        assemble(world, honest_runs(world), name="!!!")


def test_the_judge_needs_the_dataset_named_as_the_tracks(world, tmp_path):
    folder = assemble(world, honest_runs(world))
    elsewhere = shutil.copytree(world[1], tmp_path / "dataset")
    with pytest.raises(ValueError, match="name the folder shakespeare_bytes"):
        judge_service_record(folder, dataset_dir=elsewhere)
    other = tiny_dataset(tmp_path / "other").rename(tmp_path / "other" / "shakespeare_bytes")
    edit(other / "manifest.json", '"val_bytes"', '"val_bytes_note": 1, "val_bytes"')  # another manifest
    report = judge_service_record(folder, dataset_dir=other)
    assert failing(report) == {"dataset"} and "manifest_sha256" in report.get("dataset").message


def test_without_the_byte_dataset_the_dataset_check_skips_and_says_how_to_build_it(world, tmp_path):
    from tools.verify.checks.verdict import verify_record

    folder = assemble(world, honest_runs(world))
    report = verify_record(folder, records_root=world[0], datasets_root=tmp_path / "no datasets")
    assert report.ok and report.get("dataset").status == "skip"
    assert "python -m tools.service.dataset data/datasets/shakespeare_bytes" in report.get("dataset").message


def test_the_committed_records_still_verify():
    from tools.verify.checks.verdict import verify_record

    records = REPO / "records"
    folders = [folder for track in sorted(records.iterdir()) if track.is_dir()
               for folder in sorted(track.iterdir()) if folder.is_dir() and not folder.name.startswith(".")]
    assert folders
    for folder in folders:
        report = verify_record(folder, records_root=records)
        assert report.ok, (folder.name, [(c.id, c.message) for c in report.checks if c.status == "fail"])


# -- the judges that run record code do not apply ------------------------------------------------------------------


def test_probes_and_the_tokenizer_audit_say_they_do_not_apply(world):
    records, dataset, _ = world
    folder = assemble(world, honest_runs(world))
    from tools.records.tracks import load_tracks
    from tools.verify.probes import probe_record
    from tools.verify.tokenizer.audit import audit_record

    probes = probe_record(folder, records_root=records, datasets_root=dataset.parent)
    tokenizer = audit_record(folder, tracks=load_tracks(records / "tracks.toml"), datasets_root=dataset.parent)
    for check in (*probes, *tokenizer):
        assert check.status == "skip" and check.message.startswith("not applicable on this track (track_service_bytes")
        assert check.evidence["not_applicable"] is True
    assert [c.id for c in probes] == ["normalization", "causality", "rescore"]
    assert [c.id for c in tokenizer] == ["val_documents", "tokenizer_roundtrip", "tokenizer_bytes"]


def test_the_committed_table_defines_the_service_track():
    from tools.records.tracks import load_tracks

    track = load_tracks(REPO / "records" / "tracks.toml")[TRACK_ID]
    assert (track.hardware, track.nproc, track.train_time_cap_s, track.eval_time_cap_s) == ("2 CPU cores", 1, 180, 240)
    assert (track.artifact_cap_bytes, track.code_line_cap, track.min_seeds) == (16_000_000, 1500, 3)
    assert (track.dataset, track.tokenizer, track.entry_scripts) == ("shakespeare_bytes", "byte", ("train.py",))
    assert track.ranked and not track.reproducible_in_ci and track.scored_by_service


# -- real runs -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_service_runs_become_a_record_that_passes(world):
    """Three real sandboxed runs of the kit's honest code (one per TORCH_SEED), assembled and judged."""
    import time

    from tests.test_service_kit import tiny_config
    from tools.service.dataset import train_dir, val_bytes
    from tools.service.evaluation import eval_layout
    from tools.service.runner import RunJob, execute_run
    from tools.verify.sandbox import sandbox_available

    ok, why = sandbox_available()
    if not ok:
        pytest.fail(f"the sandbox must work here (CI installs bubblewrap): {why}")
    records, dataset, _ = world
    config = tiny_config(records.parent, dataset)
    layout = eval_layout(val_bytes(dataset))
    runs = []
    for number, seed in enumerate(SEEDS):
        started = time.time()
        result = execute_run(RunJob(number, f"run-{number}", "alice", CODE, seed=seed), config, layout,
                             train_dir(dataset))
        assert result.status == "succeeded", result.reason
        runs.append(SeedRun(seed, f"alice/run-{number}", result.to_dict(), started, time.time(),
                            config.runs_dir / str(number) / "model.pt2"))
    folder = assemble(world, runs, time_budget_s=config.time_budget_s)
    report = judge(world, folder)
    assert report.ok, [(c.id, c.message) for c in report.checks if c.status == "fail"]
    assert {c.id for c in report.checks if c.status == "pass"} == ALL_CHECKS_PASS
