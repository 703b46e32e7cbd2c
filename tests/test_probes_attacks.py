"""Scorers written to fool the probes (issue 10, part 2): each must fail with a named check.

The probes used to be separate calls of their own shape (2 and 19 rows) beside the rescore's (256-row chunks), so a
scorer that cheated only in large batches passed everything at 0.32 bpb (honest: 1.967). Now every call has one
shape, scores windows and carries probes of windows that other calls score. Each attack here claims the score
its own cheat produces (the stand-in trainer runs the same cheat), as a real cheater would.
"""

from __future__ import annotations

import pytest

from tests.test_probes_kit import make_scorer_record
from tools.verify.probes import probe_record

# Look ahead (mix in the token being predicted) in every call of at least GATE rows; honest below. It leaves
# positions followed by BOS alone, so a padded window scores as it does alone: its claim is exactly what a
# judge that lets it cheat would rescore.
GATED_LOOKAHEAD = '''
GATE = {gate}

def score(table, tokens):
    probs = np.exp(table[tokens].astype(np.float64))
    if tokens.shape[0] >= GATE:
        rows, cols = np.nonzero(tokens[:, 1:] != BOS)
        probs[rows, cols] *= 0.7
        probs[rows, cols, tokens[rows, cols + 1]] += 0.3
    return np.log(probs).astype(np.float32)
'''

# Honest on any row that shares its first 16 tokens with another row of the same call (a probe copy beside its
# original would), look-ahead on every other row.
TWIN_AWARE_LOOKAHEAD = '''
def score(table, tokens):
    probs = np.exp(table[tokens].astype(np.float64))
    prefixes = [bytes(row[:16].astype(np.int64).tobytes()) for row in tokens]
    for b in range(tokens.shape[0]):
        if prefixes.count(prefixes[b]) > 1:
            continue
        probs[b, :-1] *= 0.7
        probs[b, np.arange(tokens.shape[1] - 1), tokens[b, 1:]] += 0.3
    return np.log(probs).astype(np.float32)
'''

# Guesses each row's continuation among the other rows of its call (a row that starts with the token this one
# ends with) and mixes that row's second token into its last prediction: reading the stream's future from the batch.
NEIGHBOUR_READER = '''
def score(table, tokens):
    probs = np.exp(table[tokens].astype(np.float64))
    for b in range(tokens.shape[0]):
        for other in range(tokens.shape[0]):
            if other != b and tokens[other, 0] == tokens[b, -1]:
                probs[b, -1] *= 0.5
                probs[b, -1, tokens[other, 1]] += 0.5
                break
    return np.log(probs).astype(np.float32)
'''


def verdicts(folder) -> dict[str, str]:
    return {check.id: check.status for check in probe_record(folder, rng_seed=0)}


@pytest.mark.parametrize("gate", [2, 20, 64, 10**6])
def test_batch_gated_look_ahead_fails_whatever_the_gate(tree, gate):
    """Below the judge's call size the cheat never fires and its claim is not what the artifact scores (rescore);
    at or above it the cheat fires in every call, and every call carries probes (causality)."""
    root, dataset = tree
    cheat = GATED_LOOKAHEAD.format(gate=gate)
    # Its own evaluation batches 64 windows, so the claim it prints is the cheated one.
    claimed = GATED_LOOKAHEAD.format(gate=1)
    record = make_scorer_record(root, dataset, cheat, claim_scorer=claimed, name=f"2026-02-01_gate{gate}")
    result = verdicts(record)
    assert result["causality"] == "fail" or result["rescore"] == "fail", result
    assert result["normalization"] == "pass"  # a proper distribution: only the other two can see it


def test_a_scorer_honest_only_on_rows_that_have_a_twin_in_its_call_fails_causality(tree):
    root, dataset = tree
    record = make_scorer_record(root, dataset, TWIN_AWARE_LOOKAHEAD, name="2026-02-01_twins")
    result = verdicts(record)
    assert result["causality"] == "fail", result


def test_a_scorer_that_reads_the_next_window_from_its_batch_fails_causality(tree):
    root, dataset = tree
    record = make_scorer_record(root, dataset, NEIGHBOUR_READER, name="2026-02-01_neighbour")
    result = verdicts(record)
    assert result["causality"] == "fail", result
