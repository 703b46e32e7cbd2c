"""`hardware`: every log ran on the track's kind of machine, with the track's number of processes.

Each log of our trainer names its machine (`hardware: device:cpu cpu_model:"..." cpu_cores:2 world_size:1`, or
`device:cuda gpu_model:"..." gpu_count:8 world_size:8`). tracks.toml's `hardware` says what the track runs on
("2 CPU cores", "8xH100 SXM", "any") and `nproc` how many processes. A log that ran elsewhere fails; a legacy log
(which never wrote the line) is a skip; a ranked track's log without the line fails, like any unlogged rule.
"""

from __future__ import annotations

import re

from tools.verify.checks.common import RecordContext, first_and_count, result

_GPU_MODEL = re.compile(r"([A-Z]\d{2,4}[A-Z]?)\b")  # no leading \b: "8xH100"  # H100, A100, L40S, B200 ...


def expected_machine(hardware: str) -> tuple[str | None, str | None]:
    """(device kind, GPU model) a track's `hardware` text asks for; None where it does not say ("any")."""
    text = hardware.strip()
    if not text or text.lower() == "any":
        return None, None
    if "cpu" in text.lower():
        return "cpu", None
    model = _GPU_MODEL.search(text.upper())
    return "cuda", model.group(1) if model else None


def check_hardware(ctx: RecordContext):
    track = ctx.track
    if track is None:
        return result("hardware", "skip", "unknown track (see track): no hardware to check against")
    if not ctx.logs:
        return result("hardware", "skip", "no logs (see files)")
    device, gpu_model = expected_machine(track.hardware)
    if device is None:
        return result("hardware", "skip", f"track {track.id} runs on {track.hardware!r}: any machine")
    problems, unknown, seen = [], [], []
    for item in ctx.logs:
        line = item.log.hardware
        if not line:
            unknown.append(item.name)
            continue
        seen.append(item.name)
        logged_device, world = line.get("device"), line.get("world_size")
        if logged_device is not None and logged_device != device:
            problems.append(f"{item.name}: ran on {logged_device}, but track {track.id} runs on {track.hardware}")
        model = line.get("gpu_model")
        if device == "cuda" and gpu_model and model is not None and gpu_model not in model.upper():
            problems.append(f"{item.name}: GPU {model!r}, but track {track.id} runs on {track.hardware}")
        if world is not None and world.isdigit() and int(world) != track.nproc:
            problems.append(f"{item.name}: world_size {world}, but track {track.id} runs {track.nproc} process(es)")
    if unknown and not ctx.legacy and track.ranked:
        problems.append(f"{unknown[0]}: no hardware line (a ranked track needs to know where it ran)")
    evidence = {"expected_device": device, "expected_gpu": gpu_model, "nproc": track.nproc, "unknown": unknown}
    if problems:
        return result("hardware", "fail", first_and_count(problems), problems=problems, **evidence)
    if not seen:
        return result("hardware", "skip", f"no hardware line in any log ({', '.join(unknown)})", **evidence)
    return result("hardware", "pass", f"{len(seen)} log(s) ran on {track.hardware} with {track.nproc} process(es)",
                  **evidence)
