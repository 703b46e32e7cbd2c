"""The example submissions (examples/service/) and the harness's local mode (tools/service/harness/prepare.py).

Each example's model is causal (changing the bytes after t leaves the logits up to t alone) and exports with
torch.export to a program that gives the same logits; each trains and is scored through the real service runner
(sandboxed, tiny budget) and reports the service's own number. The harness run directly (none of the service's
variables set) reads a local byte dataset and gives the same bits per byte as the service's scoring of the same
model; without the dataset it says which command builds it."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from data.sources import Document
from tests.test_service_kit import tiny_config, tiny_dataset, tiny_text
from tools.service import dataset as service_dataset
from tools.service.dataset import train_dir, val_bytes, write_byte_dataset
from tools.service.evaluation import eval_layout, evaluate_export
from tools.service.outcome import SUCCEEDED
from tools.service.runner import HARNESS_FILE, RunJob, execute_run
from tools.verify.sandbox import sandbox_available

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "service"
MODELS = {"byte_transformer.py": "ByteTransformer", "dilated_cnn.py": "DilatedCNN"}
SERVICE_VARIABLES = ("PG_SERVICE_TRAIN_DIR", "PG_SERVICE_OUT_DIR", "PG_SERVICE_REPLY_DIR")


def load_harness(monkeypatch):
    """A fresh copy of the harness, importable as `prepare` (as the examples do) for the rest of the test."""
    spec = importlib.util.spec_from_file_location("prepare", HARNESS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "prepare", module)
    return module


def load_example(monkeypatch, file_name: str):
    """The example as a module, its training not run (it only runs under `__main__`)."""
    load_harness(monkeypatch)
    name = "example_" + file_name.removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / file_name)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up while it is executed
    spec.loader.exec_module(module)
    return module


def example_model(monkeypatch, file_name: str, seed: int = 0, **config) -> torch.nn.Module:
    module = load_example(monkeypatch, file_name)
    torch.manual_seed(seed)
    return getattr(module, MODELS[file_name])(module.Config(**config)).eval()


@pytest.fixture()
def local(monkeypatch):
    """Local mode: none of the service's variables set."""
    for name in SERVICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PG_PREPARE_DATA", raising=False)
    monkeypatch.delenv("PG_SERVICE_DIR", raising=False)


@pytest.mark.parametrize("file_name", sorted(MODELS))
def test_an_example_model_is_causal(monkeypatch, file_name):
    model = example_model(monkeypatch, file_name)
    with torch.no_grad():  # unit-gain weights (the residual branches start near 0): every dependence shows
        for parameter in model.parameters():
            if parameter.ndim >= 2:
                parameter.normal_(0.0, parameter[0].numel() ** -0.5)
    torch.manual_seed(1)
    x = torch.randint(0, 256, (3, 256))
    x[:, 0] = 256
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (3, 256, 257) and logits.dtype == torch.float32
        for t in (0, 1, 17, 128, 254):
            changed = x.clone()
            changed[:, t + 1 :] = torch.randint(0, 256, (3, 255 - t))
            other = model(changed)
            assert torch.allclose(other[:, : t + 1], logits[:, : t + 1], rtol=0, atol=1e-6), t
            assert (other[:, t + 1 :] - logits[:, t + 1 :]).abs().max() > 1e-4, t  # it does read its context
        early = x.clone()
        early[:, 1] = (early[:, 1] + 1) % 256  # the last position sees the whole window
        assert (model(early)[:, 255] - logits[:, 255]).abs().max() > 1e-5


@pytest.mark.parametrize("file_name", sorted(MODELS))
def test_an_example_model_exports_and_the_program_gives_the_same_logits(monkeypatch, file_name):
    model = example_model(monkeypatch, file_name)
    torch.manual_seed(2)
    example, x = torch.randint(0, 256, (2, 2, 256))
    with torch.no_grad():
        program = torch.export.export(model, (example,), strict=False)
        exported = program.module()(x)
        assert exported.shape == (2, 256, 257)
        assert torch.allclose(exported, model(x), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    ok, why = sandbox_available()
    if not ok:
        pytest.fail(f"the sandbox must work here (CI installs bubblewrap): {why}")
    root = tmp_path_factory.mktemp("examples")
    dataset = tiny_dataset(root)
    return root, dataset, eval_layout(val_bytes(dataset))


@pytest.mark.slow
@pytest.mark.parametrize("run_id, file_name", list(enumerate(sorted(MODELS), start=1)))
def test_an_example_trains_and_is_scored_by_the_service(world, run_id, file_name):
    root, dataset, layout = world
    config = tiny_config(root, dataset, time_budget_s=3.0)
    code = (EXAMPLES / file_name).read_text()
    result = execute_run(RunJob(run_id, f"run-{run_id}", "tester", code), config, layout, train_dir(dataset))
    assert result.status == SUCCEEDED, (result.reason, result.output_tail[-10:])
    assert result.val_bpb is not None and math.isfinite(result.val_bpb) and 0 < result.val_bpb < 9
    assert result.reported_val_bpb == pytest.approx(result.val_bpb, abs=1e-4)
    assert not result.reported_mismatch and not result.flags
    assert result.steps and result.steps > 0 and result.reported_training_s >= 3.0
    assert result.reported["seed"] == 0 and result.reported["num_params"] > 100_000
    assert sorted(result.reported) == ["num_params", "seed", "total_steps", "training_time_secs", "val_bpb"]


@pytest.mark.slow
def test_local_mode_gives_the_services_bits_per_byte(world, local, monkeypatch, tmp_path, capsys):
    _, dataset, layout = world
    monkeypatch.setenv("PG_PREPARE_DATA", str(dataset))
    model = example_model(monkeypatch, "byte_transformer.py", seed=3, width=64, layers=2, heads=2)
    prepare = sys.modules["prepare"]
    assert prepare.local_mode()
    assert [Path(p).name for p in prepare._get_data_files("train")] == sorted(
        p.name for p in train_dir(dataset).iterdir())
    torch.manual_seed(3)  # a few steps, so the model is not near uniform
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = prepare.make_dataloader(8, 256, "train", "cpu")
    model.train()
    for _ in range(15):
        x, y = next(loader)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    local_bpb = prepare.evaluate_bpb(model, 8, "cpu")
    assert "LOCAL score" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="once per run"):
        prepare.evaluate_bpb(model, 8, "cpu")

    example = torch.randint(0, 256, (8, 256))
    with torch.no_grad():
        program = torch.export.export(model.eval(), (example,), strict=False)
    torch.export.save(program, str(tmp_path / "model.pt2"))
    service = evaluate_export(tmp_path / "model.pt2", 8, layout, tmp_path / "scoring", max_rows=64,
                              call_timeout_s=60.0)
    assert service.passed, service.failure
    assert local_bpb == pytest.approx(service.val_bpb, abs=1e-6)
    assert 2.0 < local_bpb < 8.0


def test_local_mode_without_its_dataset_says_how_to_build_it(local, monkeypatch, tmp_path):
    absent = tmp_path / "absent"
    monkeypatch.setenv("PG_PREPARE_DATA", str(absent))
    prepare = load_harness(monkeypatch)
    assert prepare.local_mode()
    build = f"`python -m tools.service.dataset {absent}`"
    for attempt in (lambda: prepare._get_data_files("train"), lambda: next(prepare.make_dataloader(2, 16)),
                    lambda: prepare.evaluate_bpb(torch.nn.Linear(1, 1), 8, "cpu")):
        with pytest.raises(RuntimeError, match=f"no byte dataset at {absent}") as raised:
            attempt()
        assert build in str(raised.value) and "PG_PREPARE_DATA" in str(raised.value)

    monkeypatch.delenv("PG_PREPARE_DATA")  # the default: the service's folder in this checkout
    monkeypatch.setattr(prepare, "_repository", lambda: tmp_path)
    default = tmp_path / "logs" / "service" / "data" / "shakespeare_bytes"
    with pytest.raises(RuntimeError, match=f"no byte dataset at {default}") as raised:
        prepare._get_data_files("train")
    assert "`python -m tools.service.dataset` (from" in str(raised.value)


def test_the_build_command_writes_where_local_mode_looks(local, monkeypatch, tmp_path):
    def tiny_shakespeare(folder, cache_dir, log=print):
        documents = [Document("work0_gut.txt", tiny_text(0, 400), "test"),
                     Document("val0_gut.txt", tiny_text(1, 200), "test", split="val")]
        return write_byte_dataset(folder, documents)

    monkeypatch.setattr(service_dataset, "ensure_shakespeare_bytes", tiny_shakespeare)
    monkeypatch.setenv("PG_SERVICE_DIR", str(tmp_path / "state"))
    assert service_dataset.main([]) == 0
    built = tmp_path / "state" / "data" / "shakespeare_bytes"
    assert (built / "manifest.json").is_file()
    prepare = load_harness(monkeypatch)
    assert prepare.local_data_dir() == built
    assert [Path(p).name for p in prepare._get_data_files("train")] == ["work0_gut.txt"]


def test_the_service_harness_is_not_in_local_mode(monkeypatch, tmp_path):
    """One of the service's variables is enough: the training files are the service's, and evaluation is its."""
    monkeypatch.setenv("PG_SERVICE_TRAIN_DIR", str(tmp_path))
    monkeypatch.setenv("PG_PREPARE_DATA", str(tmp_path / "elsewhere"))
    for name in SERVICE_VARIABLES[1:]:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "work0").write_bytes(b"abc")
    prepare = load_harness(monkeypatch)
    assert not prepare.local_mode()
    assert prepare._get_data_files("train") == [str(tmp_path / "work0")]
    with pytest.raises(RuntimeError, match="POST /run"):
        prepare.evaluate_bpb(torch.nn.Linear(1, 1), 8, "cpu")
