"""Read a training log: the embedded source, the score, times, sizes, metadata and the loss curve.

Our own format (docs/CONTRACTS.md §2) is the script's source, a line of exactly 100 '=', then `key:value` lines.
The public competition's logs are read too: the same shape with other final-evaluation labels
(`final_int6_sliding_window_exact`, `legal_ttt_exact`, `quantized_ttt_phased`, ...) and other size labels.

Which line is the score: the last `<label>_exact` line with a val_bpb, if any; otherwise (public logs only: a log
with our `code_sha256:` line must have an `_exact` line) the last final-evaluation line (`<label> ... val_bpb:Y`)
after training ended. A line starting with `diagnostic` is never the score.
The parser reports what it found and names what it did not find in `missing`: it never guesses a number.
One pass over the lines with a prefix dispatch and compiled regexes (~1 ms for a typical log).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

from tools.records.model import CurvePoint, FinalScore, ParsedLog, RecordError
from tools.records.paths import read_regular_file

SEPARATOR = "=" * 100
_SEPARATOR_LINE = "\n" + SEPARATOR + "\n"
MAX_LOG_BYTES = 50_000_000  # real logs are well under 1 MB; a bigger one is read up to here and flagged

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER + r"\Z")
_MILLISECONDS_RE = re.compile(r"(" + _NUMBER + r")ms\Z")
_INTEGER_RE = re.compile(r"\d+\Z")
# key:value or KEY=value; a value may be double-quoted (with \" and \\ escapes) to hold spaces.
_TOKEN_RE = re.compile(r'(?<![^\s])([A-Za-z_][\w.\-/]*)[:=]("(?:[^"\\]|\\.)*"|[^\s"]\S*)')
_STEP_RE = re.compile(r"step:(\d+)/(\d+)(?=\s|$)")
_STEP_LINE_RE = re.compile(
    rf"step:(\d+)/(\d+)(?: train_loss:({_NUMBER}))?(?: val_loss:({_NUMBER}) val_bpb:({_NUMBER}))?"
    rf"(?: train_time:({_NUMBER})ms)?(?: step_avg:{_NUMBER}ms)?\Z"
)
_BYTES_LINE_RE = re.compile(r"(Serialized model|Code size|Total submission size)\b([^:]*):\s*(\d+)\s*bytes\b")
_BARE_STEP_RE = re.compile(r"\d+/\d+ ")  # the April format: `4988/20000 val_loss: 2.81 val_bpb: 1.09`
_SPACED_KEY_RE = re.compile(r"(?<![^\s])([A-Za-z_][\w.\-/]*): (?=\S)")
_MINUTES_RE = re.compile(r"(" + _NUMBER + r")m\Z")
_HYPERPARAMETER_LINE_RE = re.compile(r"([A-Za-z_][\w.\-]*): ?(.*)\Z")
_UNESCAPE_RE = re.compile(r"\\(.)")

# Every ParsedLog field that can be unknown; those still None after parsing are listed in `missing`.
_REPORTED_FIELDS = (
    "code", "run_id", "seed", "val_loss", "val_bpb", "steps", "planned_steps", "train_time_ms", "eval_time_ms",
    "model_bytes", "code_bytes", "bytes_total", "code_sha256", "dataset_name", "manifest_sha256",
    "tokenizer_sha256", "val_tokens", "val_bytes",
)  # fmt: skip


def extract_code(text: str) -> str | None:
    """The script source embedded at the top of a log: everything before the first "\\n" + 100 '=' + "\\n".

    None when the log has no separator (a captured stdout, a log from another script). Byte-exact: the caller
    compares its sha256 with the submitted file's.
    """
    end = text.find(_SEPARATOR_LINE)
    if end >= 0:
        return text[:end]
    if text.endswith("\n" + SEPARATOR):  # cut off right after the separator
        return text[: -len(SEPARATOR) - 1]
    return None


def parse_tokens(text: str) -> dict[str, str]:
    """`key:value` / `KEY=value` tokens of one line (quoted values unquoted); the first occurrence of a key wins."""
    tokens: dict[str, str] = {}
    for match in _TOKEN_RE.finditer(text):
        key, value = match.group(1), match.group(2)
        if value.startswith('"'):
            value = _UNESCAPE_RE.sub(r"\1", value[1:-1])
        tokens.setdefault(key, value)
    return tokens


def spaced_keys(line: str) -> str:
    """`train_time: 588103ms step: 4988/20000` -> `train_time:588103ms step:4988/20000` (the April public format
    puts a space after the colon; the values are the same)."""
    return _SPACED_KEY_RE.sub(r"\1:", line)


def parse_log(path: str | Path, *, follow_symlinks: bool = True, max_bytes: int = MAX_LOG_BYTES) -> ParsedLog:
    """Parse a log file. RecordError when it cannot be read at all: missing, not a regular file, a refused
    symlink, empty, binary (NUL bytes) or not UTF-8. A log over `max_bytes` is parsed up to the cap, with a warning."""
    try:
        data, truncated = read_regular_file(path, max_bytes, follow_symlinks=follow_symlinks)
    except (OSError, ValueError) as problem:
        reason = getattr(problem, "strerror", None) or str(problem)
        raise RecordError(path, f"cannot read log: {reason}") from None
    warnings = []
    if truncated:
        # Cut at the last complete line so a multi-byte character is never split.
        data = data[: data.rfind(b"\n") + 1]
        if not data:
            raise RecordError(path, f"no line break in the first {max_bytes} bytes; not a log")
        warnings.append(f"log is larger than {max_bytes} bytes; only the first {len(data)} bytes were read")
    text = decode_log(data, path)
    parsed = parse_log_text(text, str(path))
    return dataclasses.replace(
        parsed, warnings=(*warnings, *parsed.warnings), content_sha256=hashlib.sha256(data).hexdigest()
    )


def decode_log(data: bytes, where: str | Path) -> str:
    """Strict UTF-8 (so the embedded code stays byte-exact); RecordError for an empty, binary or non-UTF-8 log."""
    if not data.strip():
        raise RecordError(where, "empty log")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise RecordError(f"{where}:{line}", f"binary file (NUL byte at offset {nul})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = data.count(b"\n", 0, problem.start) + 1
        raise RecordError(f"{where}:{line}", f"not UTF-8 (invalid byte at offset {problem.start})") from None


_TIMESTAMP_PREFIX_RE = re.compile(r"^\d{9,11}\.\d{1,6} ", re.MULTILINE)


def parse_log_text(text: str, path: str = "") -> ParsedLog:
    """Parse a log already in memory. Never raises on any text; see the module docstring for the rules."""
    prefix_notes = []
    if _TIMESTAMP_PREFIX_RE.match(text):
        # Some public logs prefix every line with a Unix time (`1776142360.538 step:...`); the lines are the same.
        text = _TIMESTAMP_PREFIX_RE.sub("", text)
        prefix_notes.append("every line starts with a Unix timestamp; read without it")
    code, body, first_line, notes = _split_code(text)
    notes = prefix_notes + notes
    reader = _LogReader(path, first_line)
    reader.read(body.split("\n"))
    return reader.result(code, notes)


_LOGGED_SHA_RE = re.compile(r"^code_sha256:([0-9a-f]{64})\b", re.MULTILINE)
_MAX_SEPARATOR_CANDIDATES = 16


_SOURCE_BLOCK = _SEPARATOR_LINE + "Source code:" + _SEPARATOR_LINE


def _split_code(text: str) -> tuple[str | None, str, int, list[str]]:
    """(code, the lines after it, the file line number of the first of them, notes about the code)."""
    if text.startswith(SEPARATOR + "\n"):
        return _split_headed(text)
    code = extract_code(text)
    if code is None:
        return None, text, 1, ["no code block: no line of 100 '=' after the source; read every line"]
    notes: list[str] = []
    end = len(code)
    logged = _LOGGED_SHA_RE.search(text, end)
    if logged and hashlib.sha256(code.encode("utf-8")).hexdigest() != logged.group(1):
        # The source itself may hold a line of 100 '='; a later separator whose code hashes to the logged
        # code_sha256 is then the real one. The hash proves it, so this is not a guess.
        start = end + 1
        for _ in range(_MAX_SEPARATOR_CANDIDATES):  # bounded: each try hashes the whole prefix
            later = text.find(_SEPARATOR_LINE, start, logged.start())
            if later < 0:
                break
            if hashlib.sha256(text[:later].encode("utf-8")).hexdigest() == logged.group(1):
                notes.append("the code holds a line of 100 '='; the separator after it was chosen by code_sha256")
                code, end = text[:later], later
                break
            start = later + 1
    later_run = _last_run_start(text, code, end)
    if later_run is not None:
        # Several runs appended to one file (each its source, then its lines): the last run made the final score.
        code, body, first_line, more = _split_code(text[later_run:])
        skipped = text.count("\n", 0, later_run)
        return code, body, first_line + skipped, [
            f"the log holds appended runs; the last one (from line {skipped + 1}) is read", *more]
    body = text[end + len(_SEPARATOR_LINE) :]
    return code, body, code.count("\n") + 3, notes  # the code's lines, the blank line, the separator


_TRAINING_END_RE = re.compile(r"^(?:stopping_early|final_\S*_exact|step:(\d+)/\1\b)", re.MULTILINE)
_MAX_RUNS = 16


def _last_run_start(text: str, code: str, code_end: int) -> int | None:
    """Where the last of several appended runs begins, or None for a log of one run. A later run starts with the
    first line of the first run's source, after a line that ends a run, and its text up to the next separator
    parses as Python (a docstring line inside a source does not)."""
    first = code.split("\n", 1)[0]
    if not first.strip():
        return None
    marker = "\n" + first + "\n"
    found, search_from = None, code_end
    for _ in range(_MAX_RUNS):
        ended = _TRAINING_END_RE.search(text, search_from)
        if ended is None:
            break
        start = text.find(marker, ended.end())
        while start >= 0:
            separator = text.find(_SEPARATOR_LINE, start + 1)
            if separator < 0:
                return found
            if _parses(text[start + 1 : separator]):
                found, search_from = start + 1, separator
                break
            start = text.find(marker, start + 1)
        else:
            break
    return found


def _parses(source: str) -> bool:
    import ast

    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _split_headed(text: str) -> tuple[str | None, str, int, list[str]]:
    """Logs that open with a header line of 100 '=' (the April public format): a `Hyperparameters:` block, then
    optionally `Source code:` between two separators and the code up to the next one. The opening header is not the
    end of a code block; without a `Source code:` block the log embeds no code and every line is read."""
    start = text.find(_SOURCE_BLOCK)
    if start < 0:
        return None, text, 1, ["no code block: the log opens with a header of 100 '=' and has no 'Source code:' block"]
    code_start = start + len(_SOURCE_BLOCK)
    end = text.find(_SEPARATOR_LINE, code_start)
    if end < 0:
        return None, text, 1, ["the 'Source code:' block has no closing line of 100 '='; read every line"]
    # Lines before the code (the hyperparameters) and after it are both the log's own; the code is cut out.
    body = text[:start] + "\n" + text[end + len(_SEPARATOR_LINE) :]
    return text[code_start:end], body, 1, []


def _number(value: str | None) -> float | None:
    if value is None or not _NUMBER_RE.match(value):
        return None
    return float(value)


def _milliseconds(value: str | None) -> float | None:
    if value is None:
        return None
    match = _MILLISECONDS_RE.match(value)
    return float(match.group(1)) if match else None


def _integer(value: str | None) -> int | None:
    if value is None or not _INTEGER_RE.match(value):
        return None
    return int(value)


class _LogReader:
    """One pass over the lines after the code block; fields are filled as their lines are seen."""

    def __init__(self, path: str, first_line: int):
        self.path = path
        self.first_line = first_line  # file line number of lines[0], for warnings
        self.values: dict[str, Any] = {}
        self.hardware: dict[str, str] = {}
        self.software: dict[str, str] = {}
        self.hyperparameters: dict[str, str] = {}
        self.curve: list[CurvePoint] = []
        self.warnings: list[str] = []
        self.stopped_early = False
        self.contract_format = False  # our own log format: only an _exact line is a score
        self.explicit_train_time: float | None = None
        self.explicit_eval_time: float | None = None
        self.stopping_train_time: float | None = None
        self.step_train_time: float | None = None
        self.training_ended_at = -1  # index of the last step/stopping_early line
        self.exact_line: tuple[int, str, dict[str, str]] | None = None
        self.exact_scores: list[tuple[str, float | None]] = []  # every _exact line, in order
        self.final_line: tuple[int, str, dict[str, str]] | None = None
        self.finals: list[tuple[int, FinalScore]] = []  # every readable final-evaluation line, with its index
        self.eval_time_by_label: dict[str, float] = {}  # evaluation name -> eval_time of its last line
        self.twin_eval_time: float | None = None  # eval_time of the score line's non-_exact twin

    # -- the pass ---------------------------------------------------------------------------------------------
    def read(self, lines: list[str]) -> None:
        in_block = False  # inside a `Hyperparameters:` block of indented `key: value` lines
        for index, raw in enumerate(lines):
            line = raw.strip()
            if in_block:
                if raw[:1] in (" ", "\t") and line:
                    self._hyperparameter(index, line)
                    continue
                in_block = False
            if not line or line[:10].lower() == "diagnostic":
                continue
            head = line[:4]
            if head == "step":
                if line.startswith("step:"):
                    self._step(index, line)
                    continue
            elif head[:1].isdigit() and _BARE_STEP_RE.match(line):
                self._step(index, "step:" + spaced_keys(line))
                continue
            elif line == "Hyperparameters:":
                in_block = True
                continue
            elif head == "stop" and line.startswith("stopping_early"):
                self._stopping_early(index, line)
                continue
            elif head == "Seri" or head == "Code" or head == "Tota":
                if self._bytes_line(index, line):
                    continue
            elif ":" in line[:20] and self._metadata(index, line):
                continue
            if "val_bpb:" in line:
                self._score_candidate(index, line)

    def _step(self, index: int, line: str) -> None:
        fast = _STEP_LINE_RE.match(line)  # the two shapes the trainers print: one regex, no token dict
        if fast:
            step_text, planned_text, *numbers = fast.groups()
            train_loss, val_loss, val_bpb, train_time = (None if n is None else float(n) for n in numbers)
        else:
            match = _STEP_RE.match(line)
            if not match:
                self._warn(index, f"unreadable step line: {line[:80]!r}")
                return
            step_text, planned_text = match.groups()
            tokens = parse_tokens(line[match.end() :])
            train_time = _milliseconds(tokens.get("train_time"))
            if train_time is None and tokens.get("train_time"):
                minutes = _MINUTES_RE.match(tokens["train_time"])  # April progress lines: `train_time: 9.8m`
                train_time = float(minutes.group(1)) * 60_000.0 if minutes else None
            train_loss, val_loss, val_bpb = (_number(tokens.get(k)) for k in ("train_loss", "val_loss", "val_bpb"))
        step = int(step_text)
        if train_time is not None:
            self.step_train_time = train_time
        self.values["steps"], self.values["planned_steps"] = step, int(planned_text)
        self.training_ended_at = index
        if train_loss is not None or val_loss is not None or val_bpb is not None:
            self.curve.append(CurvePoint(step, train_loss, val_loss, val_bpb, train_time))

    def _hyperparameter(self, index: int, line: str) -> None:
        match = _HYPERPARAMETER_LINE_RE.match(line)
        if not match:
            return
        key, value = match.groups()
        self.hyperparameters.setdefault(key, value)
        if key == "seed":
            self._set(index, "seed", value, _integer)
        elif key == "run_id":
            self._set(index, "run_id", value, str)
        elif key in ("datasets_dir", "data_path") and value.strip():
            folder = value.strip().rstrip("/").rsplit("/", 1)[-1]
            if folder.startswith("fineweb"):  # a dataset folder's name, not a scratch folder's (`pgolf_data`)
                self.values.setdefault("wild_dataset_name", folder)

    def _stopping_early(self, index: int, line: str) -> None:
        self.stopped_early = True
        self.training_ended_at = index
        line = spaced_keys(line)
        tokens = parse_tokens(line)
        train_time = _milliseconds(tokens.get("train_time"))
        if train_time is None:
            self._warn(index, "stopping_early line without a readable train_time:<T>ms")
        else:
            self.stopping_train_time = train_time
        step = _STEP_RE.search(line)
        if step:
            self.values["steps"], self.values["planned_steps"] = int(step.group(1)), int(step.group(2))

    def _bytes_line(self, index: int, line: str) -> bool:
        match = _BYTES_LINE_RE.match(line)
        if not match:
            return False
        kind, count = match.group(1), int(match.group(3))
        field = {"Serialized model": "model_bytes", "Code size": "code_size_line", "Total submission size": "bytes_total"}
        if kind == "Code size" and "compressed" in match.group(2) and "uncompressed" not in match.group(2):
            self.values["code_bytes_compressed"] = count  # `Code size (compressed)`: a self-extracting form's size
            return True
        # The last one wins: the public script logs the raw size first, then the compressed one.
        self.values[field[kind]] = count
        return True

    def _metadata(self, index: int, line: str) -> bool:
        key, _, rest = line.partition(":")
        if key in ("run_id", "seed"):
            tokens = parse_tokens(spaced_keys(line))
            self._set(index, "run_id", tokens.get("run_id"), str)
            self._set(index, "seed", tokens.get("seed"), _integer)
        elif key == "code_sha256":
            self.contract_format = True  # only our trainer logs this line
            tokens = parse_tokens(line)
            self._set(index, "code_sha256", tokens.get("code_sha256"), str)
            if "code_bytes" in tokens:
                self._set(index, "code_bytes_token", tokens["code_bytes"], _integer)
        elif key == "val_tokens":
            tokens = parse_tokens(line)
            self._set(index, "val_tokens", tokens.get("val_tokens"), _integer)
            if "val_bytes" in tokens:
                self._set(index, "val_bytes", tokens["val_bytes"], _integer)
        elif key == "train_time":
            self.explicit_train_time = self._time(index, line, "train_time")
        elif key == "eval_time":
            self.explicit_eval_time = self._time(index, line, "eval_time")
        elif key == "hardware":
            self.hardware.update(parse_tokens(rest))
        elif key == "software":
            self.software.update(parse_tokens(rest))
        elif key == "hyperparameters":
            self.hyperparameters.update(parse_tokens(rest))
        elif key == "dataset":
            tokens = parse_tokens(rest)
            self._set(index, "dataset_name", tokens.get("name"), str)
            for field in ("manifest_sha256", "tokenizer_sha256"):
                self._set(index, field, tokens.get(field), str)
        elif key == "train_loader" and rest.startswith("dataset:"):  # public: train_loader:dataset:<name> ...
            self.values.setdefault("wild_dataset_name", rest[len("dataset:") :].split()[0] or None)
        elif key == "val_loader":  # public: val_loader:shards pattern=... tokens:<N>
            tokens = parse_tokens(rest)
            if "tokens" in tokens:
                self.values.setdefault("wild_val_tokens", _integer(tokens["tokens"]))
        else:
            return False
        return True

    def _time(self, index: int, line: str, key: str) -> float | None:
        value = _milliseconds(parse_tokens(line).get(key))
        if value is None:
            self._warn(index, f"{key} line without a readable {key}:<T>ms: {line[:80]!r}")
        return value

    def _set(self, index: int, field: str, raw: str | None, convert: Any) -> None:
        if raw is None:
            return
        value = convert(raw)
        if value is None:
            self._warn(index, f"{field}: cannot read {raw[:40]!r}")
            return
        earlier = self.values.get(field)
        if earlier is not None and earlier != value:
            self._warn(index, f"{field}: {value!r} conflicts with the earlier {earlier!r}; keeping the first")
            return
        self.values[field] = value

    def _score_candidate(self, index: int, line: str) -> None:
        label = line.split(None, 1)[0]
        if ":" in label:  # `key:value` first: a progress line (ttt_chunk:3/10 ...) or a setting (val_bpb:enabled)
            return
        tokens = parse_tokens(line)
        if _number(tokens.get("val_bpb")) is None:
            self._warn(index, f"{label}: val_bpb is not a finite number: {tokens.get('val_bpb')!r}")
            if not label.endswith("_exact"):
                return  # an unreadable _exact line is still the score line: its score is unknown, not replaced
        eval_time = _milliseconds(tokens.get("eval_time"))
        # The words before the first key:value name the evaluation: `final_int8_zlib_roundtrip_exact sliding`
        # is the exact twin of `final_int8_zlib_roundtrip sliding ... eval_time:Tms`, not of the plain round trip.
        words = line.split()
        qualifiers = next((i for i, word in enumerate(words) if ":" in word), len(words))
        twin = " ".join([label.removesuffix("_exact"), *words[1:qualifiers]])
        name = " ".join([label, *words[1:qualifiers]])
        if _number(tokens.get("val_bpb")) is not None:
            self.finals.append((index, FinalScore(name, _number(tokens.get("val_bpb")), _number(tokens.get("val_loss")),
                                                  line, eval_time)))
        if label.endswith("_exact"):
            self.exact_line = (index, line, tokens)
            self.exact_scores.append((" ".join([label, *words[1:qualifiers]]), _number(tokens.get("val_bpb"))))
            self.twin_eval_time = self.eval_time_by_label.get(twin)
        else:
            self.final_line = (index, line, tokens)
            if eval_time is not None:
                self.eval_time_by_label[twin] = eval_time

    def _warn(self, index: int, message: str) -> None:
        self.warnings.append(f"line {self.first_line + index}: {message}")

    # -- after the pass ---------------------------------------------------------------------------------------
    def _check_code(self, code: str) -> None:
        """Compare the embedded code with the hash and size the script logged about itself."""
        encoded = code.encode("utf-8")
        logged_sha = self.values.get("code_sha256")
        actual_sha = hashlib.sha256(encoded).hexdigest()
        if logged_sha and logged_sha != actual_sha:
            self.warnings.append(f"logged code_sha256 {logged_sha} differs from the embedded code's {actual_sha}")
        for field in ("code_bytes_token", "code_size_line"):
            logged_bytes = self.values.get(field)
            if logged_bytes is not None and logged_bytes != len(encoded):
                self.warnings.append(f"logged code size {logged_bytes} differs from the embedded code's {len(encoded)} bytes")
                break

    def result(self, code: str | None, notes: list[str]) -> ParsedLog:
        self.warnings[:0] = notes
        if code is not None:
            self._check_code(code)
        values = self.values
        score = self.exact_line
        if score is None and self.contract_format:
            self.warnings.append("no final *_exact score line (our log format requires one)")
        elif score is None and self.final_line is not None:
            if self.final_line[0] > self.training_ended_at:
                score = self.final_line
            else:
                self.warnings.append("the last final-evaluation line comes before training ended; not a score")
        val_bpb = val_loss = eval_time = None
        score_line = None
        if score is not None:
            _, score_line, tokens = score
            val_bpb, val_loss = _number(tokens.get("val_bpb")), _number(tokens.get("val_loss"))
            eval_time = _milliseconds(tokens.get("eval_time"))
            if eval_time is None and score is self.exact_line:
                eval_time = self.twin_eval_time
        if self.explicit_eval_time is not None:
            eval_time = self.explicit_eval_time
        train_time = next(
            (t for t in (self.explicit_train_time, self.stopping_train_time, self.step_train_time) if t is not None),
            None,
        )
        code_bytes = values.get("code_size_line", values.get("code_bytes_token"))
        fields: dict[str, Any] = {
            "code": code,
            "run_id": values.get("run_id"),
            "seed": values.get("seed"),
            "val_loss": val_loss,
            "val_bpb": val_bpb,
            "score_line": score_line,
            "steps": values.get("steps"),
            "planned_steps": values.get("planned_steps"),
            "train_time_ms": train_time,
            "eval_time_ms": eval_time,
            "stopped_early": self.stopped_early,
            "model_bytes": values.get("model_bytes"),
            "code_bytes": code_bytes,
            "code_bytes_compressed": values.get("code_bytes_compressed"),
            "bytes_total": values.get("bytes_total"),
            "code_sha256": values.get("code_sha256"),
            "dataset_name": values.get("dataset_name", values.get("wild_dataset_name")),
            "manifest_sha256": values.get("manifest_sha256"),
            "tokenizer_sha256": values.get("tokenizer_sha256"),
            "val_tokens": values.get("val_tokens", values.get("wild_val_tokens")),
            "val_bytes": values.get("val_bytes"),
        }
        missing = tuple(name for name in _REPORTED_FIELDS if fields[name] is None)
        return ParsedLog(
            path=self.path,
            hardware=self.hardware,
            software=self.software,
            hyperparameters=self.hyperparameters,
            curve=tuple(self.curve),
            contract_format=self.contract_format,
            exact_scores=tuple(self.exact_scores),
            final_scores=tuple(final for index, final in self.finals if index > self.training_ended_at),
            missing=missing,
            warnings=tuple(self.warnings),
            **fields,
        )
