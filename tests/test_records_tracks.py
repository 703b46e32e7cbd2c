"""tools.records.tracks and tools.records.paths: the track table is validated key by key; paths honour overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.records import paths
from tools.records.model import RecordError
from tools.records.tracks import load_tracks

GOOD_TRACK = """\
[tracks.track_cpu]
title = "2 CPU cores, 180 s"
hardware = "2 CPU cores"
nproc = 1
train_time_cap_s = 180
eval_time_cap_s = 60
artifact_cap_bytes = 16_000_000
code_line_cap = 1500
dataset = "shakespeare_sp1024"
tokenizer = "sp1024"
min_seeds = 3
ranked = true
reproducible_in_ci = true
reproduce_tolerance_bpb = 0.005

[tracks.track_cpu.significance]
metric = "val_bpb"
test = "one_sided_t"
alpha = 0.01
min_improvement = 0.005

[tracks.track_cpu.env]
MAX_WALLCLOCK_SECONDS = "180"

[tracks.track_open]
title = "no caps"
hardware = "any"
nproc = 8
artifact_cap_bytes = 16_000_000
code_line_cap = 1500
dataset = "fineweb10B_sp1024"
tokenizer = "sp1024"
min_seeds = 1
ranked = false
reproducible_in_ci = false
reproduce_tolerance_bpb = 0.005

[tracks.track_open.significance]
metric = "val_bpb"
test = "one_sided_t"
alpha = 0.01
min_improvement = 0.005
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tracks.toml"
    path.write_text(text)
    return path


def replace_line(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


def test_valid_table_loads_every_field(tmp_path):
    tracks = load_tracks(write(tmp_path, GOOD_TRACK))
    assert sorted(tracks) == ["track_cpu", "track_open"]
    cpu = tracks["track_cpu"]
    assert cpu.id == "track_cpu"
    assert (cpu.train_time_cap_s, cpu.eval_time_cap_s) == (180.0, 60.0)
    assert cpu.artifact_cap_bytes == 16_000_000 and isinstance(cpu.artifact_cap_bytes, int)
    assert (cpu.nproc, cpu.code_line_cap, cpu.min_seeds) == (1, 1500, 3)
    assert cpu.ranked is True and cpu.reproducible_in_ci is True
    assert cpu.significance.alpha == 0.01 and cpu.significance.min_improvement == 0.005
    assert cpu.significance.metric == "val_bpb" and cpu.significance.test == "one_sided_t"
    assert dict(cpu.env) == {"MAX_WALLCLOCK_SECONDS": "180"}
    with pytest.raises(TypeError):
        cpu.env["X"] = "1"  # tracks are shared between callers: read-only
    open_track = tracks["track_open"]
    assert open_track.train_time_cap_s is None and open_track.eval_time_cap_s is None
    assert open_track.ranked is False and dict(open_track.env) == {}


def test_the_repository_table_is_valid():
    tracks = load_tracks(Path(__file__).resolve().parents[1] / "records" / "tracks.toml")
    assert {"track_10min_16mb", "track_non_record_16mb", "track_cpu_shakespeare"} <= set(tracks)
    assert all(track.artifact_cap_bytes == 16_000_000 for track in tracks.values())
    assert tracks["track_non_record_16mb"].ranked is False


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("nproc = 1\n", "nproc = 1\ncolour = \"red\"\n", "tracks.track_cpu.colour: unknown key"),
        ("min_seeds = 3\n", "", "tracks.track_cpu.min_seeds: missing required key"),
        ("nproc = 1\n", 'nproc = "1"\n', "tracks.track_cpu.nproc: expected an integer, got a string"),
        ("nproc = 1\n", "nproc = true\n", "tracks.track_cpu.nproc: expected an integer, got a boolean"),
        ("ranked = true\n", "ranked = 1\n", "tracks.track_cpu.ranked: expected true or false"),
        ("artifact_cap_bytes = 16_000_000\n", "artifact_cap_bytes = -1\n", "tracks.track_cpu.artifact_cap_bytes: must be >= 1"),
        ("artifact_cap_bytes = 16_000_000\n", "artifact_cap_bytes = 16e6\n", "tracks.track_cpu.artifact_cap_bytes: expected an integer"),
        ("train_time_cap_s = 180\n", "train_time_cap_s = -180\n", "tracks.track_cpu.train_time_cap_s: must be > 0"),
        ("eval_time_cap_s = 60\n", "eval_time_cap_s = 0\n", "tracks.track_cpu.eval_time_cap_s: must be > 0"),
        ("eval_time_cap_s = 60\n", "eval_time_cap_s = nan\n", "tracks.track_cpu.eval_time_cap_s: must be finite"),
        ("code_line_cap = 1500\n", "code_line_cap = 0\n", "tracks.track_cpu.code_line_cap: must be >= 1"),
        ("reproduce_tolerance_bpb = 0.005\n", "reproduce_tolerance_bpb = -0.1\n", "reproduce_tolerance_bpb: must be >= 0"),
        ('title = "2 CPU cores, 180 s"\n', 'title = ""\n', "tracks.track_cpu.title: must not be empty"),
        ('dataset = "shakespeare_sp1024"\n', "dataset = 3\n", "tracks.track_cpu.dataset: expected a string"),
        ("alpha = 0.01\n", "alpha = 1.5\n", "tracks.track_cpu.significance.alpha: must be between 0 and 1"),
        ("alpha = 0.01\n", "", "tracks.track_cpu.significance.alpha: missing required key"),
        ('metric = "val_bpb"\n', 'metric = "accuracy"\n', "tracks.track_cpu.significance.metric: must be one of"),
        ('test = "one_sided_t"\n', 'test = "vibes"\n', "tracks.track_cpu.significance.test: must be one of"),
        ("min_improvement = 0.005\n", "min_improvement = 0.005\np = 1\n", "tracks.track_cpu.significance.p: unknown key"),
        ('MAX_WALLCLOCK_SECONDS = "180"\n', "MAX_WALLCLOCK_SECONDS = 180\n", "tracks.track_cpu.env.MAX_WALLCLOCK_SECONDS: expected a string"),
    ],
)
def test_each_invalid_key_is_named(tmp_path, old, new, where):
    path = write(tmp_path, replace_line(GOOD_TRACK, old, new))
    with pytest.raises(RecordError) as caught:
        load_tracks(path)
    assert caught.value.where == str(path)
    assert where in caught.value.message


def test_missing_significance_table_is_named(tmp_path):
    text = GOOD_TRACK.replace("[tracks.track_open.significance]", "[unused]")
    with pytest.raises(RecordError, match="unused: unknown top-level key"):
        load_tracks(write(tmp_path, text))
    text = GOOD_TRACK.split("[tracks.track_open]")[0].replace("[tracks.track_cpu.significance]", "[tracks.track_cpu.sig]")
    with pytest.raises(RecordError, match="tracks.track_cpu.sig: unknown key"):
        load_tracks(write(tmp_path, text))


def test_missing_significance_table_is_a_missing_key(tmp_path):
    text = GOOD_TRACK.split("[tracks.track_open.significance]")[0]
    with pytest.raises(RecordError, match="tracks.track_open.significance: missing required key"):
        load_tracks(write(tmp_path, text))
    text = GOOD_TRACK.replace("[tracks.track_open.significance]", "[tracks.track_open.significance.x]")
    with pytest.raises(RecordError, match="tracks.track_open.significance.x: unknown key"):
        load_tracks(write(tmp_path, text))


def test_bad_track_id_and_empty_table(tmp_path):
    with pytest.raises(RecordError, match="track id must be a folder name"):
        load_tracks(write(tmp_path, GOOD_TRACK.replace("tracks.track_open", 'tracks."../escape"')))
    with pytest.raises(RecordError, match="no \\[tracks.<id>\\] tables"):
        load_tracks(write(tmp_path, "# nothing\n"))


def test_invalid_toml_names_the_line(tmp_path):
    path = write(tmp_path, GOOD_TRACK.replace("nproc = 1\n", "nproc = = 1\n"))
    with pytest.raises(RecordError) as caught:
        load_tracks(path)
    line = GOOD_TRACK.splitlines().index("nproc = 1") + 1
    assert caught.value.where == f"{path}:{line}"
    assert "invalid TOML" in caught.value.message


def test_missing_file(tmp_path):
    with pytest.raises(RecordError, match="cannot read the track table"):
        load_tracks(tmp_path / "absent.toml")


def test_edits_are_seen_despite_the_cache(tmp_path):
    path = write(tmp_path, GOOD_TRACK)
    assert load_tracks(path)["track_cpu"].min_seeds == 3
    path.write_text(GOOD_TRACK.replace("min_seeds = 3", "min_seeds = 5"))
    os.utime(path, ns=(1, 10**18))  # a different mtime even on coarse-clock file systems
    assert load_tracks(path)["track_cpu"].min_seeds == 5


def test_default_path_comes_from_paths(tmp_path, monkeypatch):
    (tmp_path / "records").mkdir()
    write(tmp_path / "records", GOOD_TRACK)
    monkeypatch.setenv("PG_REPO_ROOT", str(tmp_path))
    assert sorted(load_tracks()) == ["track_cpu", "track_open"]


# -- paths ---------------------------------------------------------------------------------------------------


def test_paths_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PG_REPO_ROOT", str(tmp_path))
    monkeypatch.delenv("PG_DATASETS_ROOT", raising=False)
    assert paths.repo_root() == tmp_path.resolve()
    assert paths.records_root() == tmp_path.resolve() / "records"
    assert paths.tracks_path() == tmp_path.resolve() / "records" / "tracks.toml"
    assert paths.datasets_root() == tmp_path.resolve() / "data" / "datasets"
    monkeypatch.setenv("PG_DATASETS_ROOT", str(tmp_path / "elsewhere"))
    assert paths.datasets_root() == (tmp_path / "elsewhere").resolve()


def test_repo_root_is_found_above_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("PG_REPO_ROOT", raising=False)
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "tracks.toml").write_text(GOOD_TRACK)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert paths.repo_root() == tmp_path.resolve()


def test_repo_root_falls_back_to_the_package_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv("PG_REPO_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)  # no records/tracks.toml above a fresh temp folder
    assert paths.repo_root() == Path(paths.__file__).resolve().parents[2]


def test_read_regular_file_caps_and_refuses(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    assert paths.read_regular_file(path, 100) == (b"0123456789", False)
    assert paths.read_regular_file(path, 10) == (b"0123456789", False)
    assert paths.read_regular_file(path, 4) == (b"0123", True)
    link = tmp_path / "link"
    link.symlink_to(path)
    assert paths.read_regular_file(link, 100)[0] == b"0123456789"
    with pytest.raises(OSError):
        paths.read_regular_file(link, 100, follow_symlinks=False)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        paths.read_regular_file(fifo, 100)  # refused at once, not blocked on a writer
