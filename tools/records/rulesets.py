"""Rulesets: named track tables under records/ (`tracks.toml`, ours; `parameter-golf.toml`, the public competition's).

`--ruleset NAME|FILE` on the judge's commands picks one: a NAME is `records/<NAME>.toml` of the repository (`tracks`
and `ours` name our own table), anything ending in `.toml` or containing a `/` is a file. Every ruleset is read by
the one loader, tools.records.tracks.load_tracks.
"""

from __future__ import annotations

from pathlib import Path

from tools.records import paths
from tools.records.model import RecordError, Track
from tools.records.tracks import load_tracks

DEFAULT_RULESET = "tracks"
_OUR_NAMES = ("tracks", "ours")


def available_rulesets() -> list[str]:
    """Names that `--ruleset` accepts without a path: the .toml tables beside records/tracks.toml."""
    folder = paths.records_root()
    names = sorted(path.stem for path in folder.glob("*.toml")) if folder.is_dir() else []
    return names or [DEFAULT_RULESET]


def ruleset_path(ruleset: str | Path | None) -> Path:
    """The file a ruleset name or path stands for; RecordError naming the choices for an unknown name."""
    if ruleset is None or str(ruleset) in _OUR_NAMES:
        return paths.tracks_path()
    text = str(ruleset)
    if text.endswith(".toml") or "/" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise RecordError(f"--ruleset {text}", "no such file")
        return path
    path = paths.records_root() / f"{text}.toml"
    if not path.is_file():
        raise RecordError(f"--ruleset {text}", f"unknown ruleset (known: {', '.join(available_rulesets())}, or a .toml file)")
    return path


def load_ruleset(ruleset: str | Path | None) -> dict[str, Track]:
    """The tracks of a ruleset, keyed by track id (the folder names under a records tree)."""
    return load_tracks(ruleset_path(ruleset))
