"""Whole runs (tools/service/runner.py): submitted code trains in the sandbox for a second, asks to be scored, and
the service decides. The score is always the service's: printing a better number is flagged, looking ahead fails,
the validation text cannot be reached, and asking for evaluation after the training budget is refused."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.test_service_kit import (
    fake_score_code,
    honest_code,
    lookahead_code,
    overtime_code,
    snooping_code,
    tiny_config,
    tiny_dataset,
)
from tools.service.dataset import train_dir, val_bytes
from tools.service.evaluation import eval_layout
from tools.service.outcome import FAILED, SUCCEEDED
from tools.service.runner import RunJob, execute_run
from tools.verify.sandbox import sandbox_available

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    ok, why = sandbox_available()
    if not ok:
        pytest.fail(f"the sandbox must work here (CI installs bubblewrap): {why}")
    root = tmp_path_factory.mktemp("service")
    dataset = tiny_dataset(root)
    return root, dataset, eval_layout(val_bytes(dataset))


def run(world, code: str, run_id: int, **overrides):
    root, dataset, layout = world
    config = tiny_config(root, dataset, **overrides)
    return config, execute_run(RunJob(run_id, f"run-{run_id}", "tester", code), config, layout, train_dir(dataset))


def reference_bpb(model_path, val: np.ndarray) -> float:
    """Direct computation with the kept model: 256-byte windows, x = BOS + y[:-1], every byte scored once."""
    model = torch.export.load(str(model_path)).module()
    values = torch.from_numpy(val.astype(np.int64))
    windows = [values[i : i + 256] for i in range(0, len(values), 256)]
    total = 0.0
    with torch.no_grad():
        for y in windows:
            x = torch.full((8, 256), 256, dtype=torch.long)  # the export's static batch of 8
            x[0, 1 : len(y)] = y[:-1]
            logprobs = torch.log_softmax(model(x).double(), dim=-1)[0]
            total -= logprobs[torch.arange(len(y)), y].sum().item()
    return total / math.log(2) / len(values)


def test_an_honest_run_gets_the_services_score_and_reports_it(world):
    config, result = run(world, honest_code(), 1)
    assert result.status == SUCCEEDED, (result.reason, result.output_tail[-5:])
    assert result.isolation == "bubblewrap"
    assert result.reported_val_bpb == result.val_bpb and not result.reported_mismatch and not result.flags
    run_dir = config.runs_dir / "1"
    assert result.val_bpb == pytest.approx(reference_bpb(run_dir / "model.pt2", val_bytes(world[1])), rel=1e-9)
    assert 1.0 <= result.training_s < config.time_budget_s + config.grace_s
    assert result.steps and result.steps > 0 and result.reported_training_s >= 1.0
    assert result.evaluation["passed"] and result.evaluation["windows"] == len(world[2].starts)
    assert any('"val_bpb"' in line for line in result.output_tail)
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.pt2", "output.txt", "reply"]


def test_printing_a_better_score_changes_nothing_but_is_flagged(world):
    _, result = run(world, fake_score_code(), 2)
    assert result.status == SUCCEEDED and result.reported_val_bpb == 0.25
    assert result.reported_mismatch and result.flags == ["reported_val_bpb_differs"]
    assert result.val_bpb > 1.0 and "flagged" in result.reason


def test_a_model_that_looks_ahead_fails_causality_and_gets_no_score(world):
    _, result = run(world, lookahead_code(), 3)
    assert result.status == FAILED and result.reason.startswith("causality check failed"), result.reason
    assert result.val_bpb is not None  # what it would have scored is kept, the run is not succeeded
    assert result.reported is None  # evaluate_bpb raised in the child: the service did not answer with a score
    assert any("did not score the model" in line for line in result.output_tail)


def test_the_validation_text_cannot_be_reached(world):
    root, dataset, _ = world
    _, result = run(world, snooping_code(dataset / "val", dataset), 4)
    snoop = next(line for line in result.output_tail if line.startswith("SNOOP "))
    found = json.loads(snoop[len("SNOOP "):])
    for path in (str(dataset / "val"), str(dataset / "manifest.json"), str(dataset / "val" / "val0_gut.txt")):
        assert found[path] in ("FileNotFoundError", "PermissionError"), (path, found[path])
    assert found["split val"] == "ValueError" and found["glob"] == [] and found["val in env"] == []
    assert len(found["train files"]) == 3
    assert result.status == SUCCEEDED and result.reported_mismatch and result.val_bpb > 1.0


def test_asking_for_evaluation_after_the_training_budget_is_refused(world):
    _, result = run(world, overtime_code(4.0), 5, grace_s=2.0)
    assert result.status == FAILED and "past the training budget" in result.reason, result.reason
    assert result.val_bpb is None and result.evaluation is None


def test_monkeypatching_the_harness_or_forging_the_answer_changes_nothing(world):
    forge = '''
import json, os
import prepare

forged = {}
try:
    with open(os.path.join(os.environ["PG_SERVICE_REPLY_DIR"], "eval_result.json"), "w") as answer:
        answer.write('{"val_bpb": 0.01}')
    forged["reply"] = "written"
except OSError as problem:
    forged["reply"] = type(problem).__name__
prepare.evaluate_bpb = lambda model, batch_size, device="cpu": 0.01
print("FORGE " + json.dumps(forged))
print(json.dumps({"val_bpb": prepare.evaluate_bpb(None, 8), "total_steps": 1}))
'''
    _, result = run(world, forge, 6)
    assert any(line == 'FORGE {"reply": "OSError"}' for line in result.output_tail), result.output_tail
    assert result.status == FAILED and result.reason == "the code exited without calling prepare.evaluate_bpb"
    assert result.val_bpb is None and result.reported_val_bpb == 0.01 and result.reported_mismatch


def test_a_run_past_its_time_limit_is_timed_out(world):
    config, result = run(world, "import time\nprint('started', flush=True)\ntime.sleep(60)\n", 7, grace_s=1.0,
                         eval_allowance_s=2.0)
    assert result.status == "timed_out" and "before it asked for its evaluation" in result.reason
    assert result.wall_s < config.run_limit_s + 10 and result.output_tail[0] == "started"
