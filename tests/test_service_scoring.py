"""The scoring exchange (tools/service/evaluation.py, scorer.py, harness/score_call.py): the service scores an
exported model over validation windows it chooses, in fresh sandboxed calls, and its checks ride in the same calls.

An honest model gets exactly the bits per byte a direct computation gives; a model that reads the next byte, one
whose rows depend on their batch, or one that keeps state between forward passes is caught or gains nothing; a
model that returns the wrong shape or NaN is refused with the reason. The pure parts (windows, verdict, outcome,
the child's files) are checked without a sandbox."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tools.service.evaluation import BOS, Layout, eval_layout, evaluate_export, make_plan
from tools.service.outcome import FAILED, SUCCEEDED, TIMED_OUT, ChildEnd, decide, parse_reported
from tools.service.runner import open_child_file, parse_request
from tools.verify.probes.plan import call_rows
from tools.verify.sandbox import sandbox_available

VAL = np.frombuffer(("Now is the winter of our discontent made glorious summer by this sun of York.\n" * 26)
                    .encode()[:2000], dtype=np.uint8)


@pytest.fixture(autouse=True, scope="module")
def bubblewrap_works():
    ok, why = sandbox_available()
    if not ok:
        pytest.fail(f"the sandbox must work here (CI installs bubblewrap): {why}")


class Bigram(torch.nn.Module):
    """Causal: each position's logits depend on its own input byte only, plus optional cheats."""

    def __init__(self, peek: float = 0.0, batch_mix: float = 0.0, stateful: bool = False, width: int = 257):
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(257, width)
        self.peek, self.batch_mix, self.stateful = peek, batch_mix, stateful
        self.register_buffer("forwards", torch.zeros(()))

    def forward(self, x):
        logits = self.table(x)
        if self.peek:  # the next input byte is this position's target
            following = torch.cat([x[:, 1:], torch.full_like(x[:, :1], BOS)], dim=1)
            logits = logits + self.peek * F.one_hot(following, 257).float()
        if self.batch_mix:  # rows see each other
            logits = logits + self.batch_mix * logits.mean(dim=0, keepdim=True)
        if self.stateful:  # remembers that it ran before, and then answers differently
            logits = logits + 5.0 * (self.forwards > 0).float() * F.one_hot(x, 257).float()
            self.forwards.add_(1)
        return logits


def export(model: torch.nn.Module, folder, batch: int = 8):
    example = torch.randint(0, 256, (batch, 256))
    with torch.no_grad():
        program = torch.export.export(model.eval(), (example,), strict=False)
    path = folder / "model.pt2"
    torch.export.save(program, str(path))
    return path


def reference_bpb(model: torch.nn.Module, val: np.ndarray) -> float:
    """The challenge's definition computed directly: windows of 256 bytes, x = BOS + y[:-1], every byte scored."""
    total = 0.0
    values = torch.from_numpy(val.astype(np.int64))
    with torch.no_grad():
        for start in range(0, len(values), 256):
            y = values[start : start + 256]
            x = torch.cat([torch.tensor([BOS]), y[:-1]])[None]
            logprobs = torch.log_softmax(model(x).double(), dim=-1)[0]
            total -= logprobs[torch.arange(len(y)), y].sum().item()
    return total / math.log(2) / len(val)


def score(model, tmp_path, batch: int = 8, val: np.ndarray = VAL, seed: int = 1):
    return evaluate_export(export(model, tmp_path, batch), batch, eval_layout(val), tmp_path / "work",
                           max_rows=512, call_timeout_s=60, seed=seed)


# --- the windows (pure) -------------------------------------------------------------------------------------------


def test_windows_score_every_byte_once_bos_first():
    val = np.arange(1000, dtype=np.int64) % 256
    layout = eval_layout(val)
    assert list(layout.lengths) == [256, 256, 256, 232] and layout.val_bytes == 1000
    plan = make_plan(layout, np.random.default_rng(0), max_rows=512)
    assert plan.calls >= 2 and plan.seq_len == 256
    seen = []
    for call in range(plan.calls):
        inputs, targets, lengths, firsts = call_rows(plan, call, layout.stream)
        assert inputs.shape == (plan.rows, 256)  # every call the same shape
        assert len(plan.probes_in(call)) >= 3  # and every call carries probes
        for window in plan.windows_in(call).tolist():
            row, n = int(plan.window_row[window]), int(layout.lengths[window])
            chunk = val[window * 256 : window * 256 + n]
            assert inputs[row, 0] == BOS and list(inputs[row, 1:n]) == list(chunk[:-1])
            assert list(targets[row, :n]) == list(chunk) and firsts[row] == 0 and lengths[row] == n
            seen.append(window)
        probe_rows = [plan.probes[k].row for k in plan.probes_in(call)]
        assert all(lengths[row] == 0 for row in probe_rows)  # probes are never summed into the score
    assert sorted(seen) == list(range(4))


def test_probe_rows_copy_windows_of_other_calls():
    layout = eval_layout(VAL)
    plan = make_plan(layout, np.random.default_rng(5), max_rows=512)
    for probe in plan.probes:
        assert int(plan.window_call[probe.window]) != probe.call
        original = layout.stream[layout.starts[probe.window] : layout.starts[probe.window] + 256]
        row = plan.probe_tokens[list(plan.probes).index(probe)]
        n = int(layout.lengths[probe.window])
        keep = n if probe.kind == "copy" else probe.position + 1
        assert list(row[:keep]) == list(original[:keep])
        if probe.kind == "future":
            assert row[probe.position + 1] != original[probe.position + 1]


# --- the exchange, in the sandbox --------------------------------------------------------------------------------


def test_an_honest_model_gets_exactly_the_direct_bits_per_byte(tmp_path):
    model = Bigram()
    evaluation = score(model, tmp_path)
    assert evaluation.passed, evaluation.failure
    assert evaluation.val_bpb == pytest.approx(reference_bpb(model, VAL), rel=1e-9)
    assert {c.id for c in evaluation.checks} == {"normalization", "causality", "finite"}
    assert evaluation.calls >= 2 and evaluation.probes >= 24 and evaluation.windows == 8


def test_a_model_that_reads_the_next_byte_fails_causality(tmp_path):
    model = Bigram(peek=6.0)
    evaluation = score(model, tmp_path)
    assert not evaluation.passed
    assert evaluation.failure.startswith("causality check failed")
    assert "changing only the tokens after position" in evaluation.failure
    assert evaluation.val_bpb < reference_bpb(Bigram(), VAL)  # the cheat would have paid


def test_a_model_whose_rows_depend_on_their_batch_fails_causality(tmp_path):
    evaluation = score(Bigram(batch_mix=0.5), tmp_path)
    assert not evaluation.passed and evaluation.failure.startswith("causality check failed")


def test_state_kept_between_forward_passes_does_not_survive_between_calls(tmp_path):
    model = Bigram(stateful=True)
    with torch.no_grad():
        x = torch.randint(0, 256, (16, 256))
        first, second = model(x), model(x)
        assert not torch.allclose(first, second)  # in one process it would answer a repeat differently
    model.forwards.zero_()
    # One chunk per call (batch = rows): each call is the program's first forward pass in a fresh process.
    rows = make_plan(eval_layout(VAL), np.random.default_rng(1), 512).rows
    evaluation = score(model, tmp_path, batch=rows)
    assert evaluation.passed, evaluation.failure


def test_a_model_with_the_wrong_output_is_refused_with_the_reason(tmp_path):
    evaluation = score(Bigram(width=10), tmp_path)
    assert not evaluation.passed and evaluation.val_bpb is None
    assert evaluation.failure.startswith("scoring check failed") and "expected logits" in evaluation.failure


def test_nan_logits_are_refused(tmp_path):
    class NaNs(Bigram):
        def forward(self, x):
            return super().forward(x) * float("nan")

    evaluation = score(NaNs(), tmp_path)
    assert not evaluation.passed and "log-probability nan" in evaluation.failure.lower()


# --- the child's files, the verdict (pure) -------------------------------------------------------------------------


def test_evaluation_requests_are_data(tmp_path):
    assert parse_request(json.dumps({"batch_size": 8, "seq_len": 256, "vocab_size": 257}).encode()) == 8
    for bad, why in [(b"[]", "object"), (b"not json", "JSON"),
                     (json.dumps({"batch_size": 0, "seq_len": 256, "vocab_size": 257}).encode(), "batch_size"),
                     (json.dumps({"batch_size": True, "seq_len": 256, "vocab_size": 257}).encode(), "batch_size"),
                     (json.dumps({"batch_size": 8, "seq_len": 128, "vocab_size": 257}).encode(), "256")]:
        with pytest.raises(ValueError, match=why):
            parse_request(bad)


def test_files_the_child_wrote_are_opened_without_following_links(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("the service's own file")
    assert open_child_file(out, "model.pt2", 100) is None
    (out / "model.pt2").symlink_to(secret)
    with pytest.raises(ValueError, match="cannot be opened"):
        open_child_file(out, "model.pt2", 100)
    os.mkfifo(out / "eval_request.json")
    with pytest.raises(ValueError, match="not a regular file"):
        open_child_file(out, "eval_request.json", 100)
    (out / "big").write_bytes(b"x" * 101)
    with pytest.raises(ValueError, match="at most 100 bytes"):
        open_child_file(out, "big", 100)
    (out / "ok").write_bytes(b"{}")
    fd, size = open_child_file(out, "ok", 100)
    os.close(fd)
    assert size == 2


def test_reported_line_is_kept_bounded_and_scalar():
    assert parse_reported('{"val_bpb": 1.5, "total_steps": 10, "nested": {"a": 1}}') == {"val_bpb": 1.5,
                                                                                          "total_steps": 10}
    assert parse_reported('{"total_steps": 10}') is None
    assert parse_reported("val_bpb: 1.5") is None
    assert parse_reported('{"val_bpb": NaN}') == {"val_bpb": "nan"}
    assert parse_reported('{"val_bpb": 1, "x": "' + "y" * 9000 + '"}') is None


def _evaluation(passed=True, val_bpb=1.5, cancelled=False):
    from tools.service.evaluation import Check, Evaluation

    return Evaluation(val_bpb, (Check("causality", passed, "ok" if passed else "moved"),), cancelled=cancelled)


@pytest.mark.parametrize("child, evaluation, reported, refused, status, reason", [
    (ChildEnd(0, False, "", 5), _evaluation(), {"val_bpb": 1.5}, "", SUCCEEDED, "scored by the service"),
    (ChildEnd(0, False, "", 5), _evaluation(), {"val_bpb": 0.5}, "", SUCCEEDED, "flagged"),
    (ChildEnd(0, False, "", 5), _evaluation(passed=False), None, "", FAILED, "causality check failed"),
    (ChildEnd(None, True, "", 9), None, None, "", TIMED_OUT, "before it asked"),
    (ChildEnd(None, True, "", 9), _evaluation(), None, "", TIMED_OUT, "after its evaluation"),
    (ChildEnd(0, False, "", 5), None, None, "", FAILED, "without calling prepare.evaluate_bpb"),
    (ChildEnd(1, False, "", 5, "ValueError: x"), None, None, "", FAILED, "exited with code 1 before"),
    (ChildEnd(1, False, "", 5), None, None, "past the training budget", FAILED, "past the training budget"),
    (ChildEnd(None, False, "output", 5), None, None, "", FAILED, "output limit"),
    (ChildEnd(None, True, "", 9), _evaluation(False, None, True), None, "", TIMED_OUT, "while its model was being"),
    (ChildEnd(0, False, "", 9), _evaluation(False, None, True), None, "", FAILED, "before its evaluation finished"),
])
def test_outcome(child, evaluation, reported, refused, status, reason):
    decision = decide(child, evaluation, reported, 100.0, refused)
    assert decision.status == status and reason in decision.reason
    if reported and evaluation and evaluation.val_bpb is not None:
        assert decision.reported_mismatch == (abs(reported["val_bpb"] - evaluation.val_bpb) > 1e-4)


def test_layout_refuses_nothing_to_score():
    with pytest.raises(ValueError):
        eval_layout(np.zeros(0, dtype=np.uint8))
    assert isinstance(eval_layout(np.zeros(1, dtype=np.uint8)), Layout)
