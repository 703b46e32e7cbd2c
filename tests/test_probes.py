"""verify probes: the arithmetic (pure functions) and the three probes on tiny scorers, honest and planted.

Every planted scorer is a few lines of numpy in tests/test_probes_kit.py; each must be caught by the right probe
and pass the others where that makes sense.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_probes_kit import (
    BOS,
    SCORERS,
    SEQ_LEN,
    VOCAB,
    bigram_table,
    claimed_bpb,
    make_scorer_record,
    scorer_function,
    val_stream,
    write_shard,
)
from tools.records.model import RecordError
from tools.verify import probes
from tools.verify.probes import (
    drift,
    eval_windows,
    gold_logprob_sum,
    load_validation_set,
    logsumexp,
    probe_record,
    read_shard,
)
from tools.verify.probes import scorer as scorer_client
from tools.verify.probes.plan import call_rows, plan_calls


def run(folder, **options):
    checks = probe_record(folder, rng_seed=options.pop("rng_seed", 0), **options)
    assert [c.id for c in checks] == ["normalization", "causality", "rescore"]
    return {c.id: c for c in checks}


def statuses(checks) -> dict[str, str]:
    return {key: check.status for key, check in checks.items()}


# --- windows ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_tokens,seq_len", [(2, 4), (10, 3), (13, 4), (100, 100), (101, 100), (7, 1)])
def test_eval_windows_score_every_token_after_the_first_exactly_once(n_tokens, seq_len):
    starts, lengths, firsts = eval_windows(n_tokens, seq_len)
    targets = np.concatenate([np.arange(s + 1, s + 1 + n) for s, n in zip(starts, lengths, strict=True)])
    assert targets.tolist() == list(range(1, n_tokens))
    assert (lengths[:-1] == seq_len).all() and 1 <= lengths[-1] <= seq_len and not firsts.any()


@given(n_tokens=st.integers(0, 300), seq_len=st.integers(1, 40), stride=st.integers(0, 50))
def test_sliding_windows_score_every_target_once_with_the_most_context_the_stride_allows(n_tokens, seq_len, stride):
    starts, lengths, firsts = eval_windows(n_tokens, seq_len, stride)
    step = min(stride, seq_len) or seq_len
    scored = [start + 1 + position for start, length, first in zip(starts, lengths, firsts, strict=True)
              for position in range(first, length)]
    assert scored == list(range(1, n_tokens))
    assert (starts == np.arange(len(starts)) * step).all() and (lengths <= seq_len).all()
    if len(starts):
        assert starts[-1] + lengths[-1] == n_tokens - 1 and (len(starts) == 1 or starts[-2] + seq_len < n_tokens - 1)
        # Every target but those of the first window sees at least L - S tokens of its own window before it.
        assert (firsts[1:] == seq_len - step).all() and firsts[0] == 0


def test_eval_windows_refuse_a_negative_stride():
    with pytest.raises(ValueError, match="stride must be >= 0"):
        eval_windows(10, 4, -1)


def test_call_rows_pad_after_the_last_input_and_never_score_padding_or_probe_rows():
    stream = np.arange(10, dtype=np.uint16)
    starts, lengths, firsts = eval_windows(len(stream), 4)
    plan = plan_calls(stream, starts, lengths, firsts, seq_len=4, vocab_size=10, bos_id=None, max_rows=100,
                      min_probes=1, rng=np.random.default_rng(0))
    seen = {}
    for call in range(plan.calls):
        inputs, targets, scored, first = call_rows(plan, call, stream)
        assert inputs.shape == (plan.rows, 4)
        for window in plan.windows_in(call).tolist():
            row = plan.window_row[window]
            seen[window] = (inputs[row].tolist(), targets[row, : scored[row]].tolist())
        for k in plan.probes_in(call):
            assert scored[plan.probes[k].row] == 0  # a probe row's targets are never summed
    assert seen == {0: ([0, 1, 2, 3], [1, 2, 3, 4]), 1: ([4, 5, 6, 7], [5, 6, 7, 8]), 2: ([8, 0, 0, 0], [9])}  # pad: 0 without BOS


# --- arithmetic ------------------------------------------------------------------------------------------------


def test_logsumexp_matches_the_definition_and_handles_minus_infinity():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 5, 7)) * 10
    expected = np.log(np.exp(values).sum(axis=-1))
    assert np.allclose(logsumexp(values), expected, rtol=1e-12)
    with_impossible = np.array([[math.log(0.5), math.log(0.5), -np.inf]])
    assert abs(logsumexp(with_impossible)[0]) < 1e-15
    assert np.isneginf(logsumexp(np.full((1, 4), -np.inf)))[0]


def test_logsumexp_of_a_gold_only_blend_is_far_from_zero():
    probs = np.full(8, 1 / 8)
    cache = np.array([0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25])  # per-token bucket shares: sums to 3
    mixture = np.log(0.5 * probs + 0.5 * cache)
    assert logsumexp(mixture) == pytest.approx(math.log(0.5 + 1.5))


def test_drift_is_relative_with_an_absolute_floor():
    reference = np.array([-10.0, -1e-9, -np.inf])
    assert drift(reference, reference)[0] == 0.0
    just_inside = reference + np.array([0.9 * (1e-5 * 10 + 1e-5), 0.9e-5, 0.0])
    assert drift(reference, just_inside)[0] < 1
    outside = reference.copy()
    outside[0] += 2 * (1e-5 * 10 + 1e-5)
    ratio, change, where = drift(reference, outside)
    assert ratio > 1 and where == (0,) and change == pytest.approx(2.2e-4)
    became_possible = reference.copy()
    became_possible[2] = -30.0
    assert drift(reference, became_possible)[0] == math.inf


def test_gold_logprob_sum_counts_scored_positions_only():
    logprobs = np.log(np.full((2, 3, 4), 0.25, dtype=np.float32))
    logprobs[1, 2, :] = 0.0  # a padding position: must not be counted
    targets = np.array([[1, 2, 3], [0, 1, 0]])
    total, impossible = gold_logprob_sum(logprobs, targets, np.array([3, 2]))
    assert total == pytest.approx(5 * math.log(0.25)) and impossible == 0
    logprobs[0, 0, :] = -np.inf  # already scored by an earlier window: skipped
    total, impossible = gold_logprob_sum(logprobs, targets, np.array([3, 2]), firsts=np.array([1, 0]))
    assert total == pytest.approx(4 * math.log(0.25)) and impossible == 0


# --- the validation data ---------------------------------------------------------------------------------------


def test_read_shard_checks_magic_and_length(tmp_path):
    good = tmp_path / "val_000000.bin"
    write_shard(good, [1, 2, 3])
    assert read_shard(good).tolist() == [1, 2, 3]
    bad_magic = tmp_path / "bad.bin"
    bad_magic.write_bytes(b"\x00" * 1030)
    with pytest.raises(RecordError, match="not a shard"):
        read_shard(bad_magic)
    short = tmp_path / "short.bin"
    short.write_bytes(good.read_bytes()[:-2])
    with pytest.raises(RecordError, match="header says 3 tokens"):
        read_shard(short)


def test_validation_set_must_agree_with_its_manifest(tree):
    _, dataset = tree
    val = load_validation_set(dataset)
    assert val.vocab_size == VOCAB and val.bos_id == BOS and len(val.tokens) == len(val_stream(dataset))
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["val_tokens"] += 1
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecordError, match="val_tokens"):
        load_validation_set(dataset)
    manifest["val_tokens"] -= 1
    manifest["tokenizer"].update(vocab_size=256, bos_id=0)
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecordError, match="token id 256 >= tokenizer.vocab_size 256"):
        load_validation_set(dataset)


# --- the causality batch ---------------------------------------------------------------------------------------


def plan_for(stream, seq_len=SEQ_LEN, vocab=VOCAB, bos=BOS, max_rows=10, min_probes=16, seed=3):
    starts, lengths, firsts = eval_windows(len(stream), seq_len)
    return plan_calls(stream, starts, lengths, firsts, seq_len=seq_len, vocab_size=vocab, bos_id=bos,
                      max_rows=max_rows, min_probes=min_probes, rng=np.random.default_rng(seed))


def test_plan_scores_every_window_once_in_calls_of_one_shape_each_holding_probes(tree):
    _, dataset = tree
    stream = val_stream(dataset)
    plan = plan_for(stream)
    assert plan.calls >= 2 and len(plan.probes) >= 16
    assert sorted(plan.window_call.tolist()) == sorted(plan.window_call.tolist())  # every window has one call
    for call in range(plan.calls):
        rows = [plan.window_row[w] for w in plan.windows_in(call)] + [plan.probes[k].row for k in plan.probes_in(call)]
        assert sorted(rows) == list(range(plan.rows))  # the call is full: same shape as every other
        assert plan.probes_in(call), "every call carries probe rows"
        assert plan.probes_of_windows_in(call) or not len(plan.windows_in(call)), "every call's windows are probed"
    # Windows are spread over calls at random, not in stream order.
    assert plan.window_call.tolist() != sorted(plan.window_call.tolist())


def test_probes_sit_in_another_call_and_perturb_only_after_t_including_a_document_boundary(tree):
    _, dataset = tree
    stream = val_stream(dataset)
    plan = plan_for(stream)
    kinds = {p.kind for p in plan.probes}
    assert kinds == {"future", "copy", "past"}
    boundary = [p for p in plan.probes if p.at_boundary and p.kind == "future"]
    assert len(boundary) == 2 and {p.position for p in boundary} == {boundary[0].position, boundary[0].position + 1}
    for k, probe in enumerate(plan.probes):
        assert probe.call != plan.window_call[probe.window], "a probe never sits beside its original"
        start, length = int(plan.starts[probe.window]), int(plan.lengths[probe.window])
        original, tokens, t = stream[start : start + length], plan.probe_tokens[k][:length], probe.position
        if probe.kind == "future":
            assert (tokens[: t + 1] == original[: t + 1]).all() and tokens[t + 1] != original[t + 1]
            assert plan.firsts[probe.window] <= t <= length - 2  # a scored position
        elif probe.kind == "past":
            assert (tokens[t:] == original[t:]).all() and tokens[t - 1] != original[t - 1] and original[t] == BOS
        else:
            assert (tokens == original).all()
    bos = boundary[1]
    assert stream[int(plan.starts[bos.window]) + bos.position] == BOS


def test_plan_without_documents_has_no_boundary_probes_and_one_window_still_makes_two_calls():
    stream = np.arange(500, dtype=np.uint16) % 50
    plan = plan_for(stream, seq_len=32, vocab=50, bos=None, min_probes=4)
    assert not any(p.at_boundary or p.kind == "past" for p in plan.probes)
    single = plan_for(stream[:20], seq_len=32, vocab=50, bos=None, min_probes=4)
    assert single.calls == 2 and len(single.starts) == 1


def test_probe_window_follows_the_model_and_stays_within_the_memory_budget():
    assert probes.probe_window(64, 1024, rows=19) == 64
    assert probes.probe_window(None, 1024, rows=19) == probes.PROBE_WINDOW_UNKNOWN_SEQ
    assert probes.probe_window(4096, 1024, rows=19) == probes.PROBE_WINDOW_MAX
    large_vocab = probes.probe_window(1024, 50_257, rows=19, budget_bytes=256 * 1024**2)
    assert 19 * large_vocab * 50_257 * 4 <= 256 * 1024**2 < 19 * (large_vocab + 1) * 50_257 * 4


# --- the probes on tiny scorers --------------------------------------------------------------------------------


def test_honest_bigram_passes_all_three_and_leaves_nothing_behind(tree, tmp_path):
    root, dataset = tree
    record = make_scorer_record(root, dataset, "honest", seeds=(42, 1337))
    checks = run(record)
    assert statuses(checks) == {"normalization": "pass", "causality": "pass", "rescore": "pass"}, checks
    rescore = checks["rescore"].evidence["seeds"]
    assert set(rescore) == {"42", "1337"}
    for seed_evidence in rescore.values():
        assert seed_evidence["targets"] == len(val_stream(dataset)) - 1
        assert abs(seed_evidence["deltas"]["submission.json"]) <= 1e-4
    causality = checks["causality"].evidence["seeds"]["42"]
    assert causality["boundary_positions_probed"] == 2 and causality["probe_rows"] >= probes.DEFAULT_POSITIONS
    assert causality["copies_probed"] >= 2 and causality["calls"] == causality["scoring_calls"] >= 2
    # Document b reads document a: legitimate context, reported as evidence only.
    assert causality["cross_document"]["later_document_reads_earlier"] is False  # a bigram forgets past one token
    assert list((tmp_path / "scratch").iterdir()) == []


def test_scorer_runs_on_cpu_with_a_scrubbed_environment(tree, monkeypatch):
    root, dataset = tree
    monkeypatch.setenv("PG_TEST_SECRET_TOKEN", "hunter2")
    picky = '''
def score(table, tokens):
    import os
    if os.environ.get("CUDA_VISIBLE_DEVICES") != "" or "PG_TEST_SECRET_TOKEN" in os.environ:
        raise SystemExit("saw a GPU or the judge's secrets")
    return table[tokens].astype(np.float32)
'''
    checks = run(make_scorer_record(root, dataset, picky, claim_scorer="honest"))
    assert statuses(checks) == {"normalization": "pass", "causality": "pass", "rescore": "pass"}, checks


def test_rescore_matches_an_independent_per_token_sum(tree):
    """For a bigram the score does not depend on windows: sum log p(x_i | x_{i-1}) over the whole stream."""
    root, dataset = tree
    record = make_scorer_record(root, dataset, "honest")
    evidence = run(record)["rescore"].evidence["seeds"]["42"]
    stream = val_stream(dataset)
    table = bigram_table(dataset, smoothing=0.1).astype(np.float64)
    nats = -table[stream[:-1], stream[1:]].sum()
    val_bytes = json.loads((dataset / "manifest.json").read_text())["val_bytes"]
    assert evidence["rescored_bpb"] == pytest.approx(nats / math.log(2) / val_bytes, rel=1e-9)


def test_unnormalized_gold_only_mixture_fails_normalization_only(tree):
    root, dataset = tree
    checks = run(make_scorer_record(root, dataset, "unnormalized"))
    assert statuses(checks) == {"normalization": "fail", "causality": "pass", "rescore": "pass"}
    message = checks["normalization"].message
    assert "do not sum to 1" in message and "total probability" in message
    assert checks["normalization"].evidence["seeds"]["42"]["max_abs_logsumexp"] > 1


def test_one_token_lookahead_fails_causality(tree):
    root, dataset = tree
    checks = run(make_scorer_record(root, dataset, "lookahead"))
    assert checks["causality"].status == "fail"
    assert checks["normalization"].status == "pass"  # a normalized distribution; it just reads the future
    assert "look-ahead" in checks["causality"].message
    evidence = checks["causality"].evidence["seeds"]["42"]
    assert evidence["worst_change"] > 0.1
    assert evidence["rounds"] == 1  # far beyond run-to-run variance: no second chance


@pytest.fixture
def numbered_calls(monkeypatch):
    """Call folders named call0001, call0002, ... (the judge names them at random) so a test can plant a scorer
    that behaves differently in one run."""
    monkeypatch.setattr(scorer_client, "call_folder_name", lambda count: f"call{count:04d}")


def test_look_ahead_in_a_single_scoring_call_fails(tree, numbered_calls):
    """Every call scores and every call is checked: a scorer that reads ahead in just one of its calls (here the
    second) is caught, by the probes of that call's windows sitting in another call."""
    root, dataset = tree
    second_run_reads_ahead = '''
def score(table, tokens):
    import os
    probs = np.exp(table[tokens].astype(np.float64))
    if "call0002" in os.getcwd():
        rows, cols = np.meshgrid(np.arange(tokens.shape[0]), np.arange(tokens.shape[1] - 1), indexing="ij")
        probs[:, :-1] *= 0.7
        probs[rows, cols, tokens[:, 1:]] += 0.3
    return np.log(probs).astype(np.float32)
'''
    checks = run(make_scorer_record(root, dataset, second_run_reads_ahead, claim_scorer="honest"))
    assert checks["causality"].status == "fail", checks["causality"].message
    assert checks["rescore"].status == "fail"  # and the scored call's numbers are not the claim's


def test_the_call_folder_tells_a_scorer_nothing():
    names = {scorer_client.call_folder_name(1) for _ in range(3)}
    assert len(names) == 3 and all(re.fullmatch(r"call-[0-9a-f]{16}", name) for name in names)


def test_leak_only_at_a_document_boundary_is_caught(tree):
    """docs/FAILURES.md A7: the BOS position reads the next document's first token. Only a probe that perturbs at the
    boundary can see it, so the boundary is always probed."""
    root, dataset = tree
    checks = run(make_scorer_record(root, dataset, "boundary_leak"), positions=2)
    assert statuses(checks) == {"normalization": "pass", "causality": "fail", "rescore": "pass"}
    assert "document boundary" in checks["causality"].message


def test_scorer_that_adapts_to_its_batch_fails_causality(tree):
    root, dataset = tree
    checks = run(make_scorer_record(root, dataset, "batch_dependent"))
    assert checks["causality"].status == "fail"
    assert "rows must be scored independently" in checks["causality"].message
    assert "scored in two calls with different other rows" in checks["causality"].message


def test_scorer_whose_output_varies_slightly_between_runs_is_asked_again_and_passes(tree, numbered_calls):
    """Kernels can differ run to run (seen with the baseline on this CPU: a whole row moved by 4e-4 nats in about
    one run of ten). Here the first scorer run shifts every log-probability by 3e-4 nats: the comparisons with
    that call move a little, the calls are run again, the move does not repeat, so it passes and says so."""
    root, dataset = tree
    first_run_differs = '''
def score(table, tokens):
    import os
    out = table[tokens].astype(np.float64)
    if "call0001" in os.getcwd():  # the judge's first scorer run
        out += 3e-4
    return out.astype(np.float32)
'''
    checks = run(make_scorer_record(root, dataset, first_run_differs, claim_scorer="honest"))
    causality = checks["causality"]
    assert causality.status == "pass", causality.message
    evidence = causality.evidence["seeds"]["42"]
    assert evidence["rounds"] == 2 and evidence["calls"] > evidence["scoring_calls"]
    assert 1e-4 < evidence["run_to_run_change"] <= 1e-3
    assert "varied between runs" in causality.message


def test_a_small_shift_that_repeats_in_every_run_fails(tree):
    """The same small move in every run is not variance: a scorer that nudges each row by what else is in its
    batch (3e-4 nats per row after the first) fails once BATCH_ROUNDS runs agree."""
    root, dataset = tree
    nudged = '''
def score(table, tokens):
    out = table[tokens].astype(np.float64)
    out += 3e-4 * (tokens.sum(axis=1) % 2)[:, None, None]  # a row's output depends on nothing but itself...
    out[1:] += 3e-4 * (tokens[0, 0] % 2)  # ...except this: every row but the first reads the first row
    return out.astype(np.float32)
'''
    checks = run(make_scorer_record(root, dataset, nudged, claim_scorer="honest"))
    causality = checks["causality"]
    assert causality.status == "fail", causality.message
    assert f"in each of {probes.BATCH_ROUNDS} runs" in causality.message


def test_claim_with_a_wrong_byte_denominator_fails_rescore_only(tree):
    """C3-like: the trainer counted one byte too many per space (here 300 extra bytes in its denominator)."""
    root, dataset = tree
    val_bytes = json.loads((dataset / "manifest.json").read_text())["val_bytes"]
    record = make_scorer_record(root, dataset, "honest", denominator_extra=300, log_val_bytes=val_bytes + 300)
    checks = run(record)
    assert statuses(checks) == {"normalization": "pass", "causality": "pass", "rescore": "fail"}
    message = checks["rescore"].message
    assert f"the claim implies {val_bytes + 300:,} bytes" in message
    assert f"the log counts val_bytes {val_bytes + 300:,}" in message


CACHE_SCORER = '''
def score(table, tokens):
    probs = np.exp(table[tokens].astype(np.float64))
    counts = np.cumsum(np.eye(table.shape[1])[tokens], axis=1) + 1.0
    probs = 0.7 * probs + 0.3 * counts / counts.sum(axis=-1, keepdims=True)
    return np.log(probs).astype(np.float32)
'''


def test_eval_seq_len_takes_precedence_over_train_seq_len(tree):
    """A context-dependent (cache) scorer: the windows decide the score, so the judge must use the log's
    EVAL_SEQ_LEN. Claimed with 32-token windows: passes with EVAL_SEQ_LEN=32, fails when only TRAIN_SEQ_LEN=64."""
    root, dataset = tree
    cache = CACHE_SCORER
    stream, table = val_stream(dataset), bigram_table(dataset, smoothing=0.1)
    val_bytes = json.loads((dataset / "manifest.json").read_text())["val_bytes"]
    assert claimed_bpb(scorer_function(cache), table, stream, 32, val_bytes) != pytest.approx(
        claimed_bpb(scorer_function(cache), table, stream, 64, val_bytes), abs=1e-4)
    matched = make_scorer_record(root, dataset, cache, name="2026-02-01_eval32", seq_len=32)
    for log in matched.glob("train_seed*.log"):
        log.write_text(log.read_text().replace("TRAIN_SEQ_LEN=32", "EVAL_SEQ_LEN=32 TRAIN_SEQ_LEN=64"))
    checks = run(matched)
    assert checks["rescore"].status == "pass", checks["rescore"].message
    assert checks["rescore"].evidence["seeds"]["42"]["seq_len"] == 32
    mismatched = make_scorer_record(root, dataset, cache, name="2026-02-01_train64", seq_len=32)
    for log in mismatched.glob("train_seed*.log"):
        log.write_text(log.read_text().replace("TRAIN_SEQ_LEN=32", "TRAIN_SEQ_LEN=64"))
    assert run(mismatched)["rescore"].status == "fail"


def test_rescore_uses_the_logs_eval_stride(tree):
    """The same context-dependent scorer claimed with sliding windows (L=32, stride 8): passes when the logs name
    EVAL_STRIDE=8 (and the evidence says so), fails when they do not (the judge then scores consecutive windows)."""
    root, dataset = tree
    stream, table = val_stream(dataset), bigram_table(dataset, smoothing=0.1)
    val_bytes = json.loads((dataset / "manifest.json").read_text())["val_bytes"]
    assert claimed_bpb(scorer_function(CACHE_SCORER), table, stream, 32, val_bytes, 8) != pytest.approx(
        claimed_bpb(scorer_function(CACHE_SCORER), table, stream, 32, val_bytes), abs=1e-4)
    sliding = make_scorer_record(root, dataset, CACHE_SCORER, name="2026-02-01_stride8", seq_len=32, stride=8)
    checks = run(sliding)
    assert checks["rescore"].status == "pass", checks["rescore"].message
    evidence = checks["rescore"].evidence["seeds"]["42"]
    assert evidence["stride"] == 8 and evidence["targets"] == len(stream) - 1
    unnamed = make_scorer_record(root, dataset, CACHE_SCORER, name="2026-02-01_unnamed", seq_len=32, stride=8)
    for log in unnamed.glob("train_seed*.log"):
        log.write_text(log.read_text().replace("EVAL_STRIDE=8 ", ""))
    assert run(unnamed)["rescore"].status == "fail"


@pytest.mark.parametrize("scorer,expected", [
    ("nan", "log-probability nan at row 0, position 1, token 5"),
    ("wrong_shape", f", {SEQ_LEN}, {VOCAB - 1}), expected [B, T, V] = ("),
    ("float16", "dtype <f2"),
])
def test_output_that_breaks_the_contract_fails(tree, scorer, expected):
    root, dataset = tree
    checks = run(make_scorer_record(root, dataset, scorer, claim_scorer="honest"))
    assert statuses(checks) == {"normalization": "fail", "causality": "fail", "rescore": "fail"}
    assert expected in checks["causality"].message


def test_output_symlink_is_refused(tree):
    root, dataset = tree
    symlinker = '''
def score(table, tokens):
    import os
    import sys
    os.symlink("/etc/hostname", sys.argv[sys.argv.index("--out") + 1])
    sys.exit(0)
'''
    checks = run(make_scorer_record(root, dataset, symlinker, claim_scorer="honest"))
    assert checks["causality"].status == "fail" and "cannot open the scorer's output" in checks["causality"].message


def test_crash_fails_with_the_scorers_last_lines(tree):
    root, dataset = tree
    crash = '''
def score(table, tokens):
    raise RuntimeError("boom in the scorer")
'''
    checks = run(make_scorer_record(root, dataset, crash, claim_scorer="honest"))
    message = checks["causality"].message
    assert checks["causality"].status == "fail" and "exited with code 1" in message
    assert "RuntimeError: boom in the scorer" in message and "pg-probes-" not in message


def test_every_call_has_the_same_shape_so_a_scorer_cannot_pick_its_calls(tree):
    """A scorer that behaves one way on small batches and another on large ones (the batch-gated cheat of issue 10
    failed here before) sees only one shape: it fails (or passes) everywhere."""
    root, dataset = tree
    fragile = '''
def score(table, tokens):
    if tokens.shape[0] > 4:
        raise MemoryError("too many rows")
    return table[tokens].astype(np.float32)
'''
    checks = run(make_scorer_record(root, dataset, fragile, claim_scorer="honest"))
    assert statuses(checks) == {"normalization": "fail", "causality": "fail", "rescore": "fail"}
    assert "rescore: the scorer exited with code 1" in checks["rescore"].message
    assert "MemoryError: too many rows" in checks["rescore"].message
    shapes = {tuple(c.evidence["seeds"]["42"].get("call_shape", ())) for c in run(
        make_scorer_record(root, dataset, "honest", name="2026-02-01_shape")).values()} - {()}
    assert len(shapes) == 1


@pytest.mark.parametrize("script,reason", [
    ("import sys\nprint('a public-competition script: trains whatever argv says')\n", "exposes no scoring entry point"),
    # Mentions the flags but has no `score` command: argparse refuses the command line (exit 2, usage).
    ("import argparse\n# score\np = argparse.ArgumentParser()\np.add_argument('--artifact')\n"
     "p.add_argument('--tokens')\np.add_argument('--out')\np.parse_args()\n", "has no `score` command"),
])
def test_record_without_a_scoring_entry_point_is_skipped_for_human_review(tree, script, reason):
    root, dataset = tree
    checks = run(make_scorer_record(root, dataset, "honest", script=script))
    assert statuses(checks) == {"normalization": "skip", "causality": "skip", "rescore": "skip"}
    for check in checks.values():
        assert reason in check.message and probes.HUMAN_REVIEW in check.message


def test_record_without_artifacts_is_skipped_for_human_review(tree):
    root, dataset = tree
    checks = run(make_scorer_record(root, dataset, "honest", artifacts=()))
    assert all(c.status == "skip" and "ships no artifact" in c.message and probes.HUMAN_REVIEW in c.message
               for c in checks.values())


def test_seeds_option_probes_only_those_and_names_missing_artifacts(tree):
    root, dataset = tree
    record = make_scorer_record(root, dataset, "honest", seeds=(42, 1337, 2025), artifacts=(42, 1337))
    checks = run(record, seeds=[1337, 2025])
    assert statuses(checks) == {"normalization": "pass", "causality": "pass", "rescore": "pass"}
    seeds = checks["rescore"].evidence["seeds"]
    assert set(seeds) == {"1337", "2025"} and seeds["2025"]["status"] == "skip"
    assert "skipped: seed 2025: no artifact" in checks["rescore"].message
    only_missing = run(record, seeds=[2025])
    assert all(c.status == "skip" for c in only_missing.values())


def test_rescore_skips_without_a_sequence_length_or_above_the_size_limit(tree, monkeypatch):
    root, dataset = tree
    no_len = run(make_scorer_record(root, dataset, "honest", name="2026-02-01_nolen", seq_len=None))
    assert no_len["rescore"].status == "skip" and "TRAIN_SEQ_LEN" in no_len["rescore"].message
    assert no_len["causality"].status == "pass"
    big = run(make_scorer_record(root, dataset, "honest", name="2026-02-01_big"), max_rescore_targets=100)
    assert big["rescore"].status == "skip" and "more than the 100" in big["rescore"].message
    # A window longer than the stream is cut to the stream: one window, nothing padded to two million.
    huge = make_scorer_record(root, dataset, "honest", name="2026-02-01_huge", seq_len=2_000_000)
    huge_checks = run(huge)
    assert huge_checks["rescore"].status == "pass" and huge_checks["rescore"].evidence["seeds"]["42"]["windows"] == 1
    monkeypatch.setattr(probes, "MAX_WINDOW_BYTES", 1024**2)
    too_wide = run(huge)["rescore"]
    assert too_wide.status == "skip" and "MiB of log-probabilities" in too_wide.message
    off = run(make_scorer_record(root, dataset, "honest", name="2026-02-01_off"), rescore=False)
    assert off["rescore"].status == "skip" and off["normalization"].status == "pass"


def test_rescore_in_small_chunks_gives_the_same_score(tree):
    root, dataset = tree
    record = make_scorer_record(root, dataset, "honest")
    whole = run(record)["rescore"].evidence["seeds"]["42"]
    chunked = run(record, chunk_bytes=10 * SEQ_LEN * VOCAB * 4)["rescore"].evidence["seeds"]["42"]
    assert whole["calls"] == 2 and chunked["calls"] >= math.ceil(chunked["windows"] / 10) > 2
    assert chunked["rescored_bpb"] == pytest.approx(whole["rescored_bpb"], rel=1e-12)


def test_missing_dataset_skips_and_broken_dataset_is_an_input_error(tree):
    root, dataset = tree
    record = make_scorer_record(root, dataset, "honest")
    checks = run(record, datasets_root=root / "elsewhere")
    assert all(c.status == "skip" and "is not prepared" in c.message for c in checks.values())
    (dataset / "val_000000.bin").write_bytes(b"garbage")
    with pytest.raises(RecordError, match="val_000000.bin"):
        run(record)


def test_positions_must_be_positive(tree):
    root, dataset = tree
    with pytest.raises(RecordError, match="--positions"):
        probe_record(make_scorer_record(root, dataset, "honest"), positions=0)


def test_every_planted_scorer_is_a_valid_python_function():
    for name in SCORERS:
        assert callable(scorer_function(name))
