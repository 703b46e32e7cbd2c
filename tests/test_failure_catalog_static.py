"""docs/FAILURES.md rows a static judge can see in a record folder: `verify record`'s checks, the dataset build's overlap
check, the leaderboard (re-judged from the folders) and the pull-request gate. One planted example per row,
caught by the check that owns it, next to its honest twin where that is cheap.

Records come from tests/recordkit.py (valid by default, one knob per defect); datasets for D2 are built by the
real data pipeline (`data/prepare.py docs`, byte tokenizer) in tmp folders.
"""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from data.prepare import main as prepare
from tests.recordkit import (
    SCRIPT,
    TRACKS_TOML,
    VAL_BYTES,
    VAL_TOKENS,
    change_line,
    make_record,
    make_repo_tree,
    manifest_facts,
    repo_env,
    sha256_hex,
    tiny_manifest,
)
from tools.records.model import CheckResult
from tools.submit.leaderboard import judge_board, render_leaderboard, write_verification_evidence
from tools.verify.checks.verdict import verify_record
from tools.verify.pr.scope import Change, classify_changes

CAP = 16_000_000
SCRIPT_BYTES = len(SCRIPT.encode())
TRACK = "track_cpu_shakespeare"


def verify(root, folder, **options):
    return verify_record(folder, records_root=root / "records", datasets_root=root / "data" / "datasets", **options)


def failing(report) -> set[str]:
    return {check.id for check in report.checks if check.status == "fail"}


def caught_by(report, check_id: str, *fragments: str) -> str:
    """`check_id` fails and its message names the problem (each fragment); returns the message."""
    check = report.get(check_id)
    assert check is not None and check.status == "fail", [(c.id, c.status, c.message) for c in report.checks]
    for fragment in fragments:
        assert fragment in check.message, check.message
    return check.message


def test_f1_honest_twin_passes_every_static_check(root):
    report = verify(root, make_record(root, artifacts=True))
    assert report.ok and failing(report) == set(), [(c.id, c.message) for c in report.checks if c.status != "pass"]


# --- A1/A2/A6 seen from the log: a final score the run does not explain (warnings; the probes are the proof) ----------


def warned_by(report, check_id: str, *fragments: str) -> str:
    """`check_id` warns (never fails: there are innocent explanations) and names the problem."""
    check = report.get(check_id)
    assert check is not None and check.status == "warn", [(c.id, c.status, c.message) for c in report.checks]
    for fragment in fragments:
        assert fragment in check.message, check.message
    assert report.ok, "a warning must not fail the record"
    return check.message


def last_step_validation_line(text: str) -> str:
    return [line for line in text.splitlines() if line.startswith("step:") and " val_bpb:" in line][-1]


def test_a1_final_score_far_better_than_the_last_training_validation_warns_score_progression(root):
    """Pre-quant TTT leaves this trace: training ends at val_bpb 1.2440, and the artifact, tuned on validation
    afterwards, claims 1.2000."""
    folder = make_record(root, bpbs=(1.2000, 1.2010, 1.2020))
    log = folder / "train_seed42.log"
    text = log.read_text()
    line = last_step_validation_line(text)
    log.write_text(text.replace(line, line.replace("val_bpb:1.2005", "val_bpb:1.2440")))
    warned_by(verify(root, folder), "score_progression", "train_seed42.log: final score 1.2000 is 0.0440 better",
              "1.2440 at step")


def test_a1_honest_twin_final_score_just_worse_than_training_passes_score_progression(root):
    check = verify(root, make_record(root, bpbs=(1.2000, 1.2010, 1.2020))).get("score_progression")
    assert check.status == "pass" and "3 log(s)" in check.message, check.message


def test_a6_several_final_scores_in_one_log_warn_score_progression(root):
    """Two passes over validation, the better one printed last (our format prints exactly one final score)."""
    folder = make_record(root, bpbs=(1.2000, 1.2010, 1.2020))
    log = folder / "train_seed1337.log"
    text = log.read_text()
    exact = next(line for line in text.splitlines() if line.startswith("final_int8_zlib_roundtrip_exact"))
    first_pass = exact.replace("val_bpb:1.20100000", "val_bpb:1.23000000")
    log.write_text(text.replace(exact, first_pass + "\n" + exact))
    warned_by(verify(root, folder), "score_progression", "train_seed1337.log: 2 different final scores",
              "1.2300", "1.2010")


# --- C5. only part of the validation set scored ---------------------------------------------------------------------


def test_c5_partial_validation_set_fails_dataset(root):
    half = {"val_tokens": VAL_TOKENS // 2, "val_bytes": VAL_BYTES // 2}
    report = verify(root, make_record(root, log_overrides={seed: half for seed in (42, 1337, 2025)}))
    caught_by(report, "dataset", "partial or wrong validation set", f"val_tokens {VAL_TOKENS // 2}", str(VAL_TOKENS))


# --- D1/D2. data where it must not be: the record must name the track's own manifest --------------------------------


def test_d1_training_shards_with_val_appended_fail_dataset(root):
    """Rebuilt shards (train + val) make another manifest; a log that names it is not the track's dataset."""
    leaky = tiny_manifest()
    leaky["train_tokens"] += VAL_TOKENS
    leaky["shards"]["train"][0].update(tokens=leaky["train_tokens"], sha256=sha256_hex(b"train+val"))
    other = sha256_hex(json.dumps(leaky, sort_keys=True, indent=1) + "\n")
    track_manifest = manifest_facts(root)["manifest_sha256"]
    report = verify(root, make_record(root, log_overrides={42: {"manifest_sha256": other}}))
    caught_by(report, "dataset", f"manifest_sha256 {other} != manifest's {track_manifest}")


WORDS = "thou art the king of nothing but my lord good night sweet prince speak now or hold thy peace".split()


def write_corpus(path, texts) -> None:
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")


def corpus_texts(count: int, seed: int = 0, words: int = 120) -> list[str]:
    """Pseudo-random prose: no 50-byte window repeats across documents by chance."""
    rng = np.random.default_rng(seed)
    return [f"Document {i}.\n" + " ".join(rng.choice(WORDS, words)) + "\n" for i in range(count)]


def test_d2_val_document_copied_into_train_stops_the_dataset_build(tmp_path, capsys):
    texts = corpus_texts(10)
    texts[8] = texts[1]  # validation document 1 (of the first 3) also in training
    write_corpus(tmp_path / "corpus.jsonl", texts)
    out = tmp_path / "datasets"
    code = prepare(["docs", "--jsonl", str(tmp_path / "corpus.jsonl"), "--val-docs", "3", "--tokenizer", "byte",
                    "--out-dir", str(out), "--quiet"])
    assert code == 2 and not out.exists()
    assert "also occur in training text, above the 1.00% threshold" in capsys.readouterr().err


def test_d2_record_trained_on_a_leaky_build_fails_dataset(tmp_path, monkeypatch):
    """The same corpus built twice under the same name, once with --allow-overlap: the track's manifest pins which
    one a record may have trained on."""
    clean, leaky = corpus_texts(10), corpus_texts(10)
    leaky[8] = leaky[1]
    tracks_toml = TRACKS_TOML.replace('"shakespeare_sp1024"', '"corpus_byte"').replace('"sp1024"', '"byte"')
    root = make_repo_tree(tmp_path, tracks_toml=tracks_toml, datasets=())
    for key, value in repo_env(root).items():
        monkeypatch.setenv(key, value)
    builds = {"track": root / "data" / "datasets", "participant": tmp_path / "elsewhere"}
    for (label, out), texts in zip(builds.items(), (clean, leaky), strict=True):
        (tmp_path / label).mkdir()
        write_corpus(tmp_path / label / "corpus.jsonl", texts)
        options = ["--allow-overlap"] if label == "participant" else []
        assert prepare(["docs", "--jsonl", str(tmp_path / label / "corpus.jsonl"), "--val-docs", "3", "--tokenizer",
                        "byte", "--out-dir", str(out), "--quiet", *options]) == 0
    leaky_manifest = (builds["participant"] / "corpus_byte" / "manifest.json").read_bytes()
    assert json.loads(leaky_manifest)["overlap"]["ok"] is False
    honest = make_record(root, name="2026-01-15_clean", dataset="corpus_byte")
    assert verify(root, honest).get("dataset").status == "pass"
    planted = make_record(root, name="2026-01-16_leaky", dataset="corpus_byte",
                          log_overrides={42: {"manifest_sha256": sha256_hex(leaky_manifest)}})
    caught_by(verify(root, planted), "dataset", f"manifest_sha256 {sha256_hex(leaky_manifest)} != manifest's")


def test_d2_one_val_document_copied_into_train_stops_a_large_build(tmp_path, capsys):
    texts = corpus_texts(130, words=60)
    texts[125] = texts[7]  # one of 120 validation documents (about 0.8% of the val text) also in training
    write_corpus(tmp_path / "corpus.jsonl", texts)
    code = prepare(["docs", "--jsonl", str(tmp_path / "corpus.jsonl"), "--val-docs", "120", "--tokenizer", "byte",
                    "--out-dir", str(tmp_path / "datasets"), "--quiet"])
    assert code == 2
    assert "per-document threshold" in capsys.readouterr().err
    assert not (tmp_path / "datasets").exists() or not any((tmp_path / "datasets").iterdir())


# --- D3. training data read during evaluation: whatever the scorer reads must be counted -------------------------


SCRIPT_READING_SHIPPED_DATA = SCRIPT.replace(
    'print("train", SEED, ITERATIONS)', 'print("score with", open("ngram_cache.npy", "rb").read(8))')


@pytest.mark.parametrize("data_file", ["ngram_cache.npy", "extra/final_model_seed42.ngram_cache.npy"])
def test_d3_training_data_shipped_beside_the_artifact_counts_toward_the_cap(root, data_file):
    model_bytes = CAP - len(SCRIPT_READING_SHIPPED_DATA.encode()) - 100  # artifact + code: 100 bytes under the cap
    folder = make_record(root, script=SCRIPT_READING_SHIPPED_DATA, model_bytes=model_bytes, artifacts=True,
                         extra_files={data_file: b"\1" * 1_000_000})
    report = verify(root, folder)
    flagged = [c for c in report.checks if c.id in ("files", "artifact_bytes") and c.status == "fail"]
    assert any(data_file.rsplit("/", 1)[-1] in check.message for check in flagged), \
        [(c.id, c.status, c.message) for c in report.checks]


# --- E. budgets: exact decimal caps ---------------------------------------------------------------------------------


def test_e1_training_over_the_time_cap_fails_train_time(root):
    caught_by(verify(root, make_record(root, train_time_ms={42: 175_000, 1337: 175_000, 2025: 180_300})), "train_time",
              "train_seed2025.log: train_time 180.300 s > cap 180 s (over by 0.300 s)")


def test_e1_honest_twin_training_exactly_at_the_cap_passes(root):
    assert verify(root, make_record(root, train_time_ms=180_000)).get("train_time").status == "pass"


def test_e2_evaluation_over_its_own_cap_fails_eval_time(root):
    caught_by(verify(root, make_record(root, eval_time_ms={42: 60_001, 1337: 30_000, 2025: 30_000})), "eval_time",
              "train_seed42.log: eval_time 60.001 s > cap 60 s")
    assert verify(root, make_record(root, name="2026-01-15_at_cap", eval_time_ms=60_000)).get("eval_time").status == "pass"


def test_e3_submission_one_byte_over_the_cap_fails_artifact_bytes(root):
    over = make_record(root, model_bytes=CAP - SCRIPT_BYTES + 1)
    caught_by(verify(root, over), "artifact_bytes", f"{CAP + 1:,} bytes > cap {CAP:,} (over by 1)")
    at_cap = make_record(root, name="2026-01-15_at_cap", model_bytes=CAP - SCRIPT_BYTES)
    assert verify(root, at_cap).get("artifact_bytes").status == "pass"


def test_e3_shipped_artifact_over_the_cap_while_its_log_says_under_fails_artifact_bytes(root):
    folder = make_record(root, model_bytes=150_000, artifacts=True, artifact_file_bytes={42: CAP})
    report = verify(root, folder)
    caught_by(report, "artifact_bytes", f"final_model_seed42.int8.ptz + train_gpt.py: {CAP + SCRIPT_BYTES:,} bytes > cap")
    assert f"final_model_seed42.int8.ptz: {CAP:,} bytes but train_seed42.log logged 150,000" in \
        report.get("artifact_bytes").evidence["problems"]


def test_e3_logged_code_size_differing_from_the_shipped_code_fails_artifact_bytes(root):
    smaller = SCRIPT_BYTES - 100
    overrides = {seed: {"code_bytes": smaller, "bytes_total": 150_000 + smaller} for seed in (42, 1337, 2025)}
    caught_by(verify(root, make_record(root, log_overrides=overrides)), "artifact_bytes",
              f"logged code size {smaller:,} bytes != train_gpt.py's {SCRIPT_BYTES:,} bytes")


# --- F1. headline numbers that do not match the logs; seeds from another configuration -----------------------------


def test_f1_headline_better_than_the_logs_fails_claims_match_logs(root):
    report = verify(root, make_record(root, submission_overrides={"val_bpb": 1.45}))
    caught_by(report, "claims_match_logs", "submission.json: val_bpb 1.45 but the seeds' logged mean is")


def test_f1_seed_claim_differing_in_the_fourth_decimal_fails_claims_match_logs(root):
    report = verify(root, make_record(root, bpbs=(1.5012, 1.4991, 1.5003), claim_overrides={1337: {"val_bpb": 1.4981}}))
    caught_by(report, "claims_match_logs", "seed 1337: val_bpb 1.4981 but train_seed1337.log says 1.49910000")


def test_f1_seed_run_with_another_script_fails_code_matches_logs(root):
    other = change_line(SCRIPT, 6, 'ITERATIONS = int(os.environ.get("ITERATIONS", "400"))')
    report = verify(root, make_record(root, log_code={2025: other}))
    caught_by(report, "code_matches_logs", "train_seed2025.log: embedded code differs from train_gpt.py at line 6")


def test_f1_same_seed_run_twice_fails_seeds_distinct(root):
    report = verify(root, make_record(root, extra_logs={"train_seed42_rerun.log": 42}))
    caught_by(report, "seeds_distinct", "both ran seed 42")


def test_f1_seed_from_another_configuration_is_caught_statically(root):
    folder = make_record(root)
    log = folder / "train_seed2025.log"
    log.write_text(log.read_text().replace("hyperparameters: ", "hyperparameters: NUM_LAYERS=9 ", 1))
    report = verify(root, folder)
    caught_by(report, "config_matches_logs", "train_seed2025.log: NUM_LAYERS=9")
    assert verify(root, make_record(root, name="2026-01-15_same_config")).get("config_matches_logs").status == "pass"


# --- F2. selection by outcome is for humans; the statistics bound what luck can buy -------------------------------


def test_f2_one_lucky_seed_fails_min_seeds(root):
    report = verify(root, make_record(root, seeds=(42,), bpbs=(1.40,)), against=1.50)
    caught_by(report, "min_seeds", "1 scored seed(s) (42) < track minimum 3")


def test_f2_improvement_within_the_noise_fails_significance(root):
    report = verify(root, make_record(root, bpbs=(1.4985, 1.4950, 1.4990)), against=1.50)
    caught_by(report, "significance", "p=")
    twin = make_record(root, name="2026-01-15_clear", bpbs=(1.4512, 1.4491, 1.4503))
    assert verify(root, twin, against=1.50).get("significance").status == "pass"


# --- F3. the board is generated from the folders and re-judges every record -------------------------------------


def board_of(root):
    return {board.track.id: board for board in judge_board(root / "records", datasets_root=root / "data" / "datasets")}


def test_f3_record_failing_a_check_stays_out_of_the_chain_whatever_it_claims(root):
    make_record(root, name="2026-01-10_base", date="2026-01-10", bpbs=(1.50, 1.51, 1.49))
    # Its submission.json claims a far better score than its logs: the board ranks by the logs, after the checks.
    make_record(root, name="2026-01-20_claims", date="2026-01-20", bpbs=(1.40, 1.401, 1.399),
                submission_overrides={"val_bpb": 1.10})
    make_record(root, name="2026-01-21_late", date="2026-01-21", bpbs=(1.30, 1.301, 1.299), train_time_ms=180_300)
    board = board_of(root)[TRACK]
    assert [entry.name for entry in board.chain] == ["2026-01-10_base"]
    rejected = {entry.name: entry.note for entry in board.rejected}
    assert rejected["2026-01-20_claims"].startswith("claims_match_logs: submission.json: val_bpb 1.1")
    assert rejected["2026-01-21_late"].startswith("train_time: ")
    text = render_leaderboard(root / "records")
    assert "2026-01-20\\_claims" in text.split("**Not accepted**", 1)[1]


def test_f3_failed_judge_evidence_keeps_a_record_out_of_the_chain(root):
    make_record(root, name="2026-01-10_base", date="2026-01-10", bpbs=(1.50, 1.51, 1.49))
    better = make_record(root, name="2026-01-20_better", date="2026-01-20", bpbs=(1.40, 1.401, 1.399))
    assert [entry.name for entry in board_of(root)[TRACK].chain] == ["2026-01-10_base", "2026-01-20_better"]
    write_verification_evidence(better, [CheckResult("tokenizer_bytes", "fail", "byte_as_replacement_char")], commit="x")
    board = board_of(root)[TRACK]
    assert [entry.name for entry in board.chain] == ["2026-01-10_base"]
    assert {entry.name: entry.note for entry in board.rejected}["2026-01-20_better"] == \
        "judge evidence: tokenizer audit failed"


def test_f3_every_folder_is_judged_whatever_order_it_arrived_in(root):
    """No hand-kept scan range: a record added late but dated early is judged in its place in the history."""
    make_record(root, name="2026-01-30_third", date="2026-01-30", bpbs=(1.30, 1.301, 1.299))
    make_record(root, name="2026-01-10_first", date="2026-01-10", bpbs=(1.50, 1.51, 1.49))
    make_record(root, name="2026-01-20_second", date="2026-01-20", bpbs=(1.40, 1.401, 1.399))
    chain = board_of(root)[TRACK].chain
    assert [entry.name for entry in chain] == ["2026-01-10_first", "2026-01-20_second", "2026-01-30_third"]
    assert [round(entry.mean, 4) for entry in chain] == [1.5, 1.4, 1.3]
    assert chain[1].p_value is not None and chain[1].p_value < 0.01


def test_f3_pull_request_bringing_its_own_verification_json_fails_the_gate():
    folder = "records/track_cpu_shakespeare/2026-02-02_new"
    changes = [Change("A", f"{folder}/{name}", size=10)
               for name in ("README.md", "submission.json", "train_gpt.py", "train_seed42.log", "verification.json")]
    scope = classify_changes(changes, existing_record_folders=set())
    assert f"{folder}/verification.json: only the judge writes verification.json" in scope.problems
    honest = classify_changes(changes[:-1], existing_record_folders=set())
    assert honest.problems == [] and honest.new_records == [folder]


def test_f1_claimed_seed_spread_differing_from_the_logs_fails_claims_match_logs(root):
    folder = make_record(root, bpbs=(1.4512, 1.4491, 1.4503), submission_overrides={"val_bpb_std": 0.0})
    report = verify(root, folder, against=1.50)
    assert report.stats["mean"] == pytest.approx(statistics.fmean((1.4512, 1.4491, 1.4503)))
    caught_by(report, "claims_match_logs", "val_bpb_std 0.0 but the seeds' sample std is")
