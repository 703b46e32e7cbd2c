"""Evidence comes only from the judge (DESIGN.md, invariant 4): verification.json binds the record's files, the
judge's commit and the isolation of each check; evidence_problems is the one rule that accepts a document, and
the board, `verify record`, `submit record` and the SOTA chain all refuse what it refuses. Attack tests: record
code that writes forged evidence wherever it can, and a pull request that ships its own forgery.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.recordkit import make_record
from tests.test_probes_kit import make_scorer_record, make_tree, scorer_script
from tools.records.model import CheckResult
from tools.submit.accept import submit_record
from tools.submit.leaderboard import render_leaderboard
from tools.verify import evidence as ev
from tools.verify.checks.sota import accepted_chain
from tools.verify.cli import main as verify_main
from tools.verify.evidence import (
    EVIDENCE_FILE,
    evidence_document,
    evidence_problems,
    forged_evidence_paths,
    record_files,
    write_verification_evidence,
)

TRACK = "track_cpu_shakespeare"
PASSING = [CheckResult("causality", "pass", "no look-ahead"), CheckResult("rescore", "pass", "matches")]


def problems_of(folder: Path) -> list[str]:
    return evidence_problems(folder, evidence_document(folder)[1])


def rewrite(folder: Path, edit) -> None:
    """Hand-edit the evidence document as a forger would (plain JSON, no judge involved)."""
    path = folder / EVIDENCE_FILE
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))


def not_accepted(board: str) -> str:
    return board.split("**Not accepted**", 1)[1].replace("\\", "") if "**Not accepted**" in board else ""


# -- what the document binds -----------------------------------------------------------------------------------


def test_the_document_binds_each_file_the_judge_commit_its_tree_state_and_each_checks_isolation(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    write_verification_evidence(folder, PASSING)
    document = json.loads((folder / EVIDENCE_FILE).read_text())
    assert document["schema"] == ev.EVIDENCE_SCHEMA == 2
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.name != EVIDENCE_FILE}
    assert document["files"] == on_disk and list(document["files"]) == sorted(on_disk)
    assert document["record_sha256"] == ev.record_sha256(folder) == ev.files_digest(on_disk)
    commit, dirty = ev.judge_state()
    assert document["tool_commit"] == commit and len(commit) == 40  # the judge's own checkout, not the records'
    assert document["tool_dirty"] is dirty and isinstance(dirty, bool)
    assert {c["isolation"] for c in document["checks"].values()} == {"bubblewrap"}
    assert problems_of(folder) == []


def test_record_sha256_is_the_schema_1_digest_unchanged(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10", extra_files={"sub/notes.txt": "n"})
    os.symlink("../elsewhere", folder / "link")
    digest = hashlib.sha256()  # the schema-1 algorithm, spelled out
    for relative in sorted(["link", "sub/notes.txt", *(p.name for p in folder.iterdir() if p.is_file())]):
        path = folder / relative
        content = b"symlink:../elsewhere" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest().encode()
        digest.update(relative.encode() + b"\0" + content + b"\n")
    assert ev.record_sha256(folder) == digest.hexdigest()
    assert record_files(folder)["link"] == "symlink:../elsewhere"


def test_a_dirty_judge_tree_is_recorded_and_shown_but_not_held_against_the_record(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    write_verification_evidence(folder, PASSING, commit="c0ffee", dirty=True)
    assert problems_of(folder) == []
    document = evidence_document(folder)[1]
    assert ev.evidence_provenance(document) == ("written by the judge at c0ffee with uncommitted changes in tools/; "
                                                "checks ran under bubblewrap")


def test_isolation_defaults_to_what_the_sandbox_applies_now(repo):
    from tools.verify.sandbox import unisolated_mode

    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    with unisolated_mode(True):
        assert ev.current_isolation() == "unisolated"
        write_verification_evidence(folder, PASSING)
    assert {c["isolation"] for c in evidence_document(folder)[1]["checks"].values()} == {"unisolated"}
    assert ev.current_isolation() == "bubblewrap"


# -- every reason to refuse a document, each one failing ---------------------------------------------------------


@pytest.mark.parametrize("change, expected", [
    (lambda f: (f / "README.md").write_text("edited after verification\n"), "README.md changed"),
    (lambda f: (f / "extra.py").write_text("import os\n"), "extra.py was added"),
    (lambda f: (f / "README.md").unlink(), "README.md was removed"),
    (lambda f: (f / "README.md").rename(f / "README.txt"), "README.md was removed"),  # the first path, sorted
])
def test_evidence_for_other_files_is_refused_naming_the_first_difference(repo, change, expected):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    write_verification_evidence(folder, PASSING)
    change(folder)
    assert problems_of(folder) == [f"verification.json is stale: {expected} since the judge's run"]


def test_a_check_that_ran_unisolated_is_refused(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    write_verification_evidence(folder, PASSING[:1], isolation="unisolated")
    write_verification_evidence(folder, PASSING[1:])  # a sandboxed rescore does not launder the earlier check
    assert set(evidence_document(folder)[1]["checks"]) == {"rescore"}  # an unaccepted document is never merged
    write_verification_evidence(folder, PASSING, isolation="unisolated")
    assert problems_of(folder) == ["verification.json: causality, rescore ran unisolated, not in the bubblewrap "
                                   "sandbox (never evidence)"]


def test_evidence_naming_no_judge_commit_is_refused(repo, monkeypatch):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    monkeypatch.setattr(ev, "judge_state", lambda: (None, None))  # tools installed outside a git checkout
    write_verification_evidence(folder, PASSING)
    assert evidence_document(folder)[1]["tool_commit"] is None
    assert problems_of(folder) == ["verification.json names no tool_commit (which judge wrote it is unknown)"]
    rewrite(folder, lambda d: d.update(tool_commit="   "))
    assert problems_of(folder) == ["verification.json names no tool_commit (which judge wrote it is unknown)"]


def test_a_schema_1_document_is_unbound_even_with_the_right_digest_and_a_hand_written_isolation(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    (folder / EVIDENCE_FILE).write_text(json.dumps({
        "schema": 1, "record_sha256": ev.record_sha256(folder), "tool_commit": "b0862bc3423a06f574a05ad99ff8642dab2349b3",
        "isolation": "bubblewrap", "checks": {"reproduction": {"status": "pass", "message": "3/3 seeds reproduced"}}}))
    assert ev.read_verification_evidence(folder) is None
    assert problems_of(folder)[0].startswith("verification.json is unbound (schema 1: no per-file hashes")


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.update(schema=3), "verification.json has an unknown schema 3"),
    (lambda d: d["checks"]["rescore"].pop("isolation"), "verification.json is malformed: every check needs"),
    (lambda d: d["checks"]["rescore"].update(status="passed"), "verification.json is malformed: every check needs"),
    (lambda d: d.pop("files"), "verification.json is malformed: no per-file hashes"),
    (lambda d: d.update(tool_dirty="no"), "verification.json is malformed: record_sha256 or tool_dirty"),
    (lambda d: d.update(record_sha256="0" * 64), "verification.json is malformed: record_sha256 is not the digest"),
])
def test_a_document_not_in_the_judges_shape_is_refused(repo, edit, expected):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    write_verification_evidence(folder, PASSING)
    rewrite(folder, edit)
    assert problems_of(folder)[0].startswith(expected)


@pytest.mark.parametrize("plant", ["garbage", "nested", "huge", "symlink", "fifo", "list"])
def test_a_hostile_file_in_place_of_the_document_is_unreadable_without_hanging_or_crashing(repo, plant, tmp_path):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    path = folder / EVIDENCE_FILE
    if plant == "garbage":
        path.write_bytes(b"\xff\x00{not json")
    elif plant == "nested":
        path.write_text("[" * 200_000 + "]" * 200_000)  # json.loads would raise RecursionError
    elif plant == "huge":
        path.write_text(json.dumps({"schema": 2, "pad": "x" * (ev.MAX_EVIDENCE_BYTES + 1)}))
    elif plant == "symlink":
        (tmp_path / "real.json").write_text("{}")
        os.symlink(tmp_path / "real.json", path)
    elif plant == "fifo":
        os.mkfifo(path)  # opening it for reading would block forever
    else:
        path.write_text("[]")
    assert evidence_document(folder) == (True, None) or plant == "list"
    assert problems_of(folder)[0].startswith("verification.json is unreadable")
    assert ev.read_verification_evidence(folder) is None


# -- one policy: the board, verify record, submit record and the chain refuse alike --------------------------------


def test_the_board_rejects_unbound_stale_or_unisolated_evidence_and_says_why(repo):
    stale = make_record(repo, name="2026-01-10_stale", date="2026-01-10")
    write_verification_evidence(stale, PASSING)
    (stale / "README.md").write_text("changed\n")
    unisolated = make_record(repo, name="2026-01-11_unisolated", date="2026-01-11")
    write_verification_evidence(unisolated, PASSING, isolation="unisolated")
    old = make_record(repo, name="2026-01-12_old", date="2026-01-12")
    (old / EVIDENCE_FILE).write_text(json.dumps({"schema": 1, "record_sha256": ev.record_sha256(old),
                                                 "checks": {}, "tool_commit": "abc"}))
    board = render_leaderboard()
    assert "_No accepted record yet._" in board.split(f"(`{TRACK}`)", 1)[1]
    rejected = not_accepted(board)
    assert "| 2026-01-10 | [2026-01-10_stale](records/track_cpu_shakespeare/2026-01-10_stale/) | judge evidence: " \
           "verification.json is stale: README.md changed since the judge's run |" in rejected
    assert "judge evidence: verification.json: causality, rescore ran unisolated" in rejected
    assert "judge evidence: verification.json is unbound (schema 1" in rejected


def test_a_record_whose_evidence_is_refused_never_sets_the_bar(repo):
    first = make_record(repo, name="2026-01-01_first", date="2026-01-01", bpbs=(1.6010, 1.5990, 1.6002))
    forged = make_record(repo, name="2026-01-05_forged", date="2026-01-05", bpbs=(1.4001, 1.3990, 1.4002))
    write_verification_evidence(forged, PASSING, isolation="unisolated")
    make_record(repo, name="2026-01-09_honest", date="2026-01-09", bpbs=(1.5501, 1.5512, 1.5495))
    assert [Path(a.record).name for a in accepted_chain(TRACK, repo / "records")] == \
        [first.name, "2026-01-09_honest"]


def test_submit_record_rejects_a_record_whose_evidence_is_refused(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    write_verification_evidence(folder, PASSING)
    assert submit_record(folder, dry_run=True, track=False).verdict == "record"
    (folder / "README.md").write_text("a different story\n")
    outcome = submit_record(folder, dry_run=True, track=False)
    assert outcome.verdict == "rejected"
    assert outcome.reason == "judge evidence: verification.json is stale: README.md changed since the judge's run"


def test_verify_record_reports_the_evidence_and_fails_when_the_board_would_refuse_it(repo):
    folder = make_record(repo, name="2026-01-10_base", date="2026-01-10")
    plain = CliRunner().invoke(verify_main, ["record", str(folder)])
    assert plain.exit_code == 0 and "judge evidence" not in plain.stdout  # no document: nothing claimed

    write_verification_evidence(folder, PASSING, commit="c0ffee", dirty=False)
    good = CliRunner().invoke(verify_main, ["record", str(folder)])
    assert good.exit_code == 0, good.output
    assert "judge evidence (verification.json): static, statistics, probes\n" \
           "  written by the judge at c0ffee; checks ran under bubblewrap" in good.stdout

    write_verification_evidence(folder, PASSING, commit="c0ffee", isolation="unisolated")
    bad = CliRunner().invoke(verify_main, ["record", str(folder)])
    assert bad.exit_code == 1
    assert "  NOT ACCEPTED: verification.json: causality, rescore ran unisolated, not in the bubblewrap sandbox" \
           in bad.stdout
    document = json.loads(CliRunner().invoke(verify_main, ["record", str(folder), "--json"]).stdout)
    assert document["ok"] is True  # the static checks passed; the evidence is what fails
    assert document["evidence"]["accepted"] is False
    assert document["evidence"]["reasons"][0].startswith("verification.json: causality, rescore ran unisolated")


# -- nothing the record's code writes is read back -------------------------------------------------------------

FORGED = {"schema": 2, "checks": {"reproduction": {"status": "pass", "message": "FORGED", "isolation": "bubblewrap"}},
          "files": {}, "record_sha256": "", "tool_commit": "forged", "tool_dirty": False}


def forger_script(*targets: Path) -> str:
    """A scorer that, on every call, writes a forged verification.json into every folder it can name: its working
    folder (the private copy) and the one above, its output folder, its TMPDIR, and `targets` (the real record
    folder and the repository, which the sandbox does not show it). Then it scores honestly."""
    return scorer_script(f'''
def score(table, tokens):
    import json, os, sys
    out = os.path.dirname(os.path.abspath(sys.argv[sys.argv.index("--out") + 1]))
    places = [os.getcwd(), os.path.dirname(os.getcwd()), out, os.environ.get("TMPDIR", "/tmp"), *{[str(t) for t in targets]!r}]
    for where in places:
        try:
            with open(os.path.join(where, "verification.json"), "w") as handle:
                handle.write({json.dumps(json.dumps(FORGED))})
        except OSError:
            pass
    return table[tokens].astype(np.float32)
''')


@pytest.fixture
def forger(tmp_path, monkeypatch):
    """A scorer record that forges evidence (claims from the honest scorer: the forger never runs in this process),
    with a scratch folder for the judge's temporary copies and the child's TMPDIR."""
    root, dataset = make_tree(tmp_path / "tree", monkeypatch)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    folder = root / "records" / TRACK / "2026-02-01_bigram"
    made = make_scorer_record(root, dataset, "honest", seeds=(42, 1337), script=forger_script(folder, root))
    assert made == folder
    # The probe kit's dataset has no documents list for the tokenizer audit: run the stages that apply to it.
    import tools.verify.pr.stages as pr_stages

    real = pr_stages.real_stages
    monkeypatch.setattr(pr_stages, "real_stages",
                        lambda: {k: v for k, v in real().items() if k in (pr_stages.RECORD, pr_stages.PROBES)})
    return root, folder, scratch


def forged_files(*roots: Path) -> list[Path]:
    return [p for r in roots for p in r.rglob(EVIDENCE_FILE) if "FORGED" in p.read_text(errors="replace")]


def test_forged_evidence_written_by_record_code_is_never_read_back(forger):
    root, folder, scratch = forger
    result = CliRunner().invoke(verify_main, ["all", str(folder), "--no-reproduce", "--write-evidence", "--json"])
    assert result.exit_code in (0, 1), result.output
    probes = {c["id"]: c["status"] for c in json.loads(result.stdout)["stages"]["verify probes"]}
    assert probes == {"normalization": "pass", "causality": "pass", "rescore": "pass"}  # the forger's code ran
    document = evidence_document(folder)[1]
    assert set(document["checks"]) == {"normalization", "causality", "rescore"}  # no forged "reproduction"
    assert document["tool_commit"] == ev.judge_state()[0]
    assert problems_of(folder) == []
    assert forged_files(root, scratch) == []  # nowhere it could reach survives: not the record, the repo, the copies


def test_without_the_sandbox_a_forgery_in_the_record_folder_is_caught_and_undone(forger):
    root, folder, scratch = forger
    result = CliRunner().invoke(verify_main, ["all", str(folder), "--no-reproduce", "--unisolated"])
    assert result.exit_code == 2
    assert f"error: the record's code changed {folder / EVIDENCE_FILE} while it ran; restored" in result.stderr
    assert not (folder / EVIDENCE_FILE).exists()  # unisolated, the forger did reach it (and the repository)
    assert forged_files(root) == [root / EVIDENCE_FILE]


# -- a pull request that ships its own verification.json ----------------------------------------------------------


def perfect_forgery(folder: Path) -> dict:
    """What a participant can write by hand: every hash is public arithmetic, a real commit is public too."""
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}
    return {"schema": 2, "files": files, "record_sha256": ev.files_digest(files), "tool_commit": ev.judge_state()[0],
            "tool_dirty": False, "checks": {"reproduction": {"status": "pass", "message": "3/3 seeds reproduced",
                                                             "isolation": "bubblewrap"}}}


def test_a_pull_request_shipping_a_perfect_forgery_is_refused_by_the_gate_since_the_board_cannot_tell(repo):
    from tools.verify.pr.scope import Change, classify_changes

    folder = make_record(repo, name="2026-02-02_new", date="2026-02-02")
    (folder / EVIDENCE_FILE).write_text(json.dumps(perfect_forgery(folder)))
    assert problems_of(folder) == []  # indistinguishable from the judge's: only how it entered main can tell
    record = f"records/{TRACK}/{folder.name}"
    changed = sorted(f"{record}/{p.name}" for p in folder.iterdir())
    assert forged_evidence_paths(changed) == [f"{record}/{EVIDENCE_FILE}"]
    scope = classify_changes([Change("A", path, size=10) for path in changed], existing_record_folders=set())
    assert any(f"{record}/{EVIDENCE_FILE}" in str(getattr(p, "message", p)) for p in scope.problems)


@pytest.mark.parametrize("paths, expected", [
    (["records/t/r/README.md", "records/t/r/train_gpt.py"], []),
    (["records/t/r/verification.json"], ["records/t/r/verification.json"]),  # added, changed or deleted alike
    (["records/t/old/verification.json", "records/t/new/verification.json"],  # a rename: both sides
     ["records/t/new/verification.json", "records/t/old/verification.json"]),
    (["records/t/r/sub/Verification.JSON"], ["records/t/r/sub/Verification.JSON"]),  # case-insensitive file systems
    (["records/t/r/verification.json/x.txt"], ["records/t/r/verification.json/x.txt"]),  # a folder by that name
    (["records/t/verification.json", "verification.json"], ["records/t/verification.json", "verification.json"]),
    (["records/t/r/verification.json.bak", "records/t/r/my_verification.json"], []),
    (["records/t/r/verification.json", "records/t/r/verification.json"], ["records/t/r/verification.json"]),
])
def test_forged_evidence_paths_names_every_change_to_a_verification_json(paths, expected):
    assert forged_evidence_paths(paths) == expected


def test_the_committed_records_evidence_is_accepted():
    """The repository's own records keep their place on the board: their evidence is bound and sandboxed."""
    records = Path(__file__).resolve().parents[1] / "records"
    documents = sorted(records.glob(f"*/*/{EVIDENCE_FILE}"))
    for path in documents:
        assert stat.S_ISREG(path.lstat().st_mode)
        assert problems_of(path.parent) == [], path
