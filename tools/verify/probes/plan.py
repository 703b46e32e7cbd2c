"""The judge's scorer calls, planned before the first one: which windows each call scores and where its probes sit.

The score and its proof come from the same calls (issue 10): a scorer must not be able to tell a probe from
scoring, so every call has one shape ([R, L] int64 tokens, rows in random order), every call scores evaluation
windows, and every call carries probe rows: copies of windows that *another* call scores, some exact and some with
the tokens after a position t replaced by other real validation text ("future"). The judge compares a probe's
output with the scored output of its original at positions <= t (all positions for a copy):

- a look-ahead (a prediction that reads token t+1 or later) moves position t of a "future" probe;
- a scorer whose rows depend on their batch moves an exact copy, which sits among different rows.

Why another call and not the same one: a scorer sees one call at a time (each runs in a fresh sandboxed process
with nothing carried over), so when it scores a window it cannot know whether, or where, that window will be
probed later. A copy beside its original in the same call would show the scorer which rows are compared, and it
could behave at exactly those. Probes of call c copy windows of the call before it (cyclically), so the judge
holds at most two calls' worth of compared rows. Positions t are drawn by the judge's private RNG among scored
positions; both sides of a document boundary are always among them when the data has one (docs/FAILURES.md A7).

Every call is checked (it holds probe rows and its windows are probed elsewhere) and normalization is checked at
every position of every call, so the judge's val_bpb comes only from calls that were also checked. What this
cannot see: a scorer that looks ahead at a small fraction f of positions escapes K "future" probes with
probability about (1 - f)^K (docs/THREATS.md gives the numbers); the probe density is an option.

Pure: plan_calls and call_rows read only their arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROBE_FRACTION = 1 / 8  # probe rows per call, as a share of the call's rows (the probes' cost on a full rescore)
MIN_PROBES_PER_CALL = 3  # room for both sides of a document boundary and the "past" probe
COPY_EVERY = 4  # one probe in this many is an exact copy (batch independence); the rest perturb after t


@dataclass(frozen=True)
class Probe:
    kind: str  # "future": tokens after `position` replaced | "copy": exact | "past": tokens before it replaced
    window: int  # the evaluation window it copies (index into the plan's windows)
    position: int  # "future": t; "past": the BOS position b; "copy": 0
    call: int  # the call the probe row sits in (never the window's own call when there is another)
    row: int  # its row in that call
    at_boundary: bool = False

    def compared(self, length: int) -> slice:
        """The positions whose log-probabilities must equal the original's (or, for "past", may differ)."""
        if self.kind == "future":
            return slice(0, self.position + 1)
        if self.kind == "past":
            return slice(self.position, length)
        return slice(0, length)


@dataclass(frozen=True)
class Plan:
    seq_len: int  # L: every call is [rows, seq_len]
    rows: int  # R
    calls: int
    starts: np.ndarray  # per window: first token's offset in the stream
    lengths: np.ndarray  # per window: real input tokens (< seq_len only for the last, padded window)
    firsts: np.ndarray  # per window: first scored position
    window_call: np.ndarray  # per window: the call that scores it
    window_row: np.ndarray  # per window: its row in that call
    probes: tuple[Probe, ...]
    probe_tokens: np.ndarray  # [K, seq_len] int64, row k = probe k's tokens
    pad_id: int

    def windows_in(self, call: int) -> np.ndarray:
        return np.flatnonzero(self.window_call == call)

    def probes_in(self, call: int) -> list[int]:
        return [k for k, probe in enumerate(self.probes) if probe.call == call]

    def probes_of_windows_in(self, call: int) -> list[int]:
        return [k for k, probe in enumerate(self.probes) if self.window_call[probe.window] == call]


def eval_windows(n_tokens: int, seq_len: int, stride: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, length, first scored position) of each evaluation window (contract §2): window k reads tokens
    [kS, kS + n) and predicts [kS + 1, kS + n], n = min(L, targets - kS), S = the stride (0 or >= L: S = L,
    consecutive windows); it scores positions [first, n): all of them for k = 0, else the last S (earlier windows
    scored the rest). The last window is the first that reaches the end: every token after the first is a target
    exactly once."""
    if seq_len < 1:
        raise ValueError(f"sequence length must be positive, got {seq_len}")
    if stride < 0:
        raise ValueError(f"stride must be >= 0, got {stride}")
    stride = min(stride, seq_len) or seq_len
    n_targets = n_tokens - 1
    if n_targets <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    last = max(0, -(-(n_targets - seq_len) // stride))  # index of the first window reaching the end
    starts = np.arange(last + 1, dtype=np.int64) * stride
    firsts = np.full(len(starts), seq_len - stride, dtype=np.int64)
    firsts[0] = 0
    return starts, np.minimum(seq_len, n_targets - starts), firsts


def call_rows(plan: Plan, call: int, stream: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(inputs [R, L], targets [R, L], scored lengths [R], first scored positions [R]) of one call. Probe rows
    score nothing (length 0): their targets are never summed, though their distributions are checked."""
    inputs = np.full((plan.rows, plan.seq_len), plan.pad_id, dtype=np.int64)
    targets = np.zeros((plan.rows, plan.seq_len), dtype=np.int64)
    lengths = np.zeros(plan.rows, dtype=np.int64)
    firsts = np.zeros(plan.rows, dtype=np.int64)
    for window in plan.windows_in(call).tolist():
        row, start, length = int(plan.window_row[window]), int(plan.starts[window]), int(plan.lengths[window])
        inputs[row, :length] = stream[start : start + length]
        targets[row, :length] = stream[start + 1 : start + 1 + length]
        lengths[row], firsts[row] = length, plan.firsts[window]
    for k in plan.probes_in(call):
        inputs[plan.probes[k].row] = plan.probe_tokens[k]
    return inputs, targets, lengths, firsts


def plan_calls(stream: np.ndarray, starts: np.ndarray, lengths: np.ndarray, firsts: np.ndarray, *, seq_len: int,
               vocab_size: int, bos_id: int | None, max_rows: int, min_probes: int, rng: np.random.Generator,
               probe_fraction: float = PROBE_FRACTION) -> Plan:
    """Spread the windows over at least two calls of one shape and place the probes.

    `max_rows` bounds R (the caller's memory budget per call; at least 2 rows are used whatever it says);
    `min_probes` is the fewest probe rows in all (each call also gets at least `probe_fraction` of its rows)."""
    n = len(starts)
    if n == 0:
        raise ValueError("no windows to score")
    budget = max(2, max_rows)
    scored_per_call = max(1, budget - max(MIN_PROBES_PER_CALL, math.ceil(budget * probe_fraction)))
    n_calls = max(2, math.ceil(n / scored_per_call))
    groups = np.array_split(rng.permutation(n), n_calls)  # windows over calls at random: no call is "the end"
    most = max(len(group) for group in groups)
    probes_per_call = max(MIN_PROBES_PER_CALL, math.ceil(most * probe_fraction / (1 - probe_fraction)),
                          math.ceil(min_probes / n_calls))
    rows = most + probes_per_call
    window_call = np.zeros(n, dtype=np.int64)
    for call, group in enumerate(groups):
        window_call[group] = call

    specs = _probe_specs(stream, starts, lengths, firsts, groups, rows, bos_id, rng)
    window_row = np.zeros(n, dtype=np.int64)
    probes: list[Probe] = []
    for call, group in enumerate(groups):
        order = rng.permutation(rows)  # random rows: neither a window nor a probe has a fixed place
        window_row[group] = order[: len(group)]
        for slot, (kind, window, position, at_boundary) in enumerate(specs[call]):
            probes.append(Probe(kind, window, position, call, int(order[len(group) + slot]), at_boundary))
    pad_id = bos_id if bos_id is not None else 0
    tokens = np.stack([_probe_tokens(p, stream, starts, lengths, seq_len, vocab_size, pad_id, rng) for p in probes])
    return Plan(seq_len=seq_len, rows=rows, calls=n_calls, starts=starts, lengths=lengths, firsts=firsts, window_call=window_call,
                window_row=window_row, probes=tuple(probes), probe_tokens=tokens, pad_id=pad_id)


Spec = tuple[str, int, int, bool]  # (kind, window, position, at_boundary)


def _source_call(call: int, groups: list[np.ndarray]) -> int:
    """The nearest earlier call (cyclically) that scores any window; the call itself only when no other does."""
    for step in range(1, len(groups)):
        other = (call - step) % len(groups)
        if len(groups[other]):
            return other
    return call


def _future_spec(window: int, starts, lengths, firsts, rng: np.random.Generator) -> Spec:
    first, last = int(firsts[window]), int(lengths[window]) - 2  # t + 1 must be a real token to replace
    if last < first:
        return ("copy", window, 0, False)
    return ("future", window, int(rng.integers(first, last + 1)), False)


def _boundary_specs(stream, starts, lengths, firsts, bos_id: int | None, rng: np.random.Generator) -> list[Spec]:
    """Both sides of one document boundary (the last token of a, predicting BOS; the BOS, predicting b's first
    token) and one "past" probe that changes document a (evidence: does b read a?), in a window that scores both."""
    if bos_id is None:
        return []
    candidates = []
    for window in rng.permutation(len(starts)).tolist():
        start, length, low = int(starts[window]), int(lengths[window]), int(firsts[window]) + 1
        inside = np.flatnonzero(stream[start + low : start + length - 1] == bos_id)  # bos-1 and bos both scored
        if len(inside):
            candidates.append((window, low + int(rng.choice(inside))))
            break
    if not candidates:
        return []
    window, bos = candidates[0]
    return [("future", window, bos - 1, True), ("future", window, bos, True), ("past", window, bos, True)]


def _probe_specs(stream, starts, lengths, firsts, groups: list[np.ndarray], rows: int, bos_id: int | None,
                 rng: np.random.Generator) -> list[list[Spec]]:
    """Per call, its probe rows (filling the call to `rows`): copies of the source call's windows."""
    call_of = np.zeros(len(starts), dtype=np.int64)
    for call, group in enumerate(groups):
        call_of[group] = call
    specs: list[list[Spec]] = [[] for _ in groups]
    for spec in _boundary_specs(stream, starts, lengths, firsts, bos_id, rng):
        home = int(call_of[spec[1]])
        target = next((c for c in range(len(groups)) if _source_call(c, groups) == home and c != home), None)
        if target is not None and len(groups[target]) + len(specs[target]) < rows:
            specs[target].append(spec)
    for call, group in enumerate(groups):
        source = groups[_source_call(call, groups)]
        free = rows - len(group) - len(specs[call])
        for slot in range(free):
            window = int(source[rng.integers(len(source))])
            if slot % COPY_EVERY == 0:
                specs[call].append(("copy", window, 0, False))
            else:
                specs[call].append(_future_spec(window, starts, lengths, firsts, rng))
    return specs


def _probe_tokens(probe: Probe, stream: np.ndarray, starts, lengths, seq_len: int, vocab_size: int, pad_id: int,
                  rng: np.random.Generator) -> np.ndarray:
    start, length = int(starts[probe.window]), int(lengths[probe.window])
    tokens = np.full(seq_len, pad_id, dtype=np.int64)
    tokens[:length] = stream[start : start + length]
    original = tokens.copy()
    if probe.kind == "future":
        t = probe.position
        tokens[t + 1 : length] = _real_text(stream, length - t - 1, start + t + 1, rng)
        changed = t + 1
    elif probe.kind == "past":
        b = probe.position
        tokens[:b] = _real_text(stream, b, start, rng)
        changed = b - 1
    else:
        return tokens
    if tokens[changed] == original[changed]:  # the nearest replaced token must differ
        tokens[changed] = (tokens[changed] + int(rng.integers(1, vocab_size))) % vocab_size
    return tokens


def _real_text(stream: np.ndarray, length: int, avoid: int, rng: np.random.Generator) -> np.ndarray:
    """`length` consecutive validation tokens from a random place (not overlapping offset `avoid` if possible).
    Real text rather than uniform noise: a probe row should look like any other row."""
    if length <= 0:
        return stream[:0].astype(np.int64)
    high = len(stream) - length
    offset = int(rng.integers(0, high + 1))
    for _ in range(8):
        if abs(offset - avoid) >= length:
            break
        offset = int(rng.integers(0, high + 1))
    return stream[offset : offset + length].astype(np.int64)
