"""The challenge harness `prepare` (tools/service/harness/prepare.py) as training code sees it: the constants, the
byte tokenizer, the training windows (x = BOS + y[:-1]), the training split only, and the exchange's names agreeing
with the service's side."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from tests.test_service_kit import tiny_dataset
from tools.service import evaluation, runner
from tools.service.dataset import load_manifest, train_dir, val_bytes


@pytest.fixture()
def harness(tmp_path, monkeypatch):
    dataset = tiny_dataset(tmp_path)
    monkeypatch.setenv("PG_SERVICE_TRAIN_DIR", str(train_dir(dataset)))
    monkeypatch.delenv("PG_SERVICE_OUT_DIR", raising=False)
    monkeypatch.delenv("PG_SERVICE_REPLY_DIR", raising=False)
    monkeypatch.setenv("PG_TIME_BUDGET", "7")
    spec = importlib.util.spec_from_file_location("prepare_under_test", runner.HARNESS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module, dataset
    sys.modules.pop("prepare_under_test", None)


def test_constants_are_the_contract(harness):
    prepare, _ = harness
    assert (prepare.MAX_SEQ_LEN, prepare.VOCAB_SIZE, prepare.BOS_TOKEN) == (256, 257, 256)
    assert prepare.TIME_BUDGET == 7.0  # the service sets it per run
    # The exchange's names and bounds are the same on both sides.
    assert (prepare.MODEL_FILE, prepare.REQUEST_FILE, prepare.RESULT_FILE) == (
        runner.MODEL_FILE, runner.REQUEST_FILE, runner.RESULT_FILE)
    assert prepare.MAX_EVAL_BATCH == runner.MAX_EVAL_BATCH
    assert (evaluation.SEQ_LEN, evaluation.VOCAB_SIZE, evaluation.BOS) == (256, 257, 256)


def test_byte_tokenizer_round_trips_utf8(harness):
    prepare, _ = harness
    tokenizer = prepare.ByteTokenizer()
    text = "To be, or not to be — ça va? 🎭\n"
    ids = tokenizer.encode(text)
    assert ids == list(text.encode("utf-8")) and all(0 <= i < 256 for i in ids)
    assert tokenizer.decode([prepare.BOS_TOKEN, *ids]) == text
    assert tokenizer.decode(torch.tensor(ids)) == text


def test_training_files_are_the_training_works_as_bytes(harness):
    prepare, dataset = harness
    files = prepare._get_data_files("train")
    manifest = load_manifest(dataset)
    assert [p.rsplit("/", 1)[-1] for p in files] == sorted(d["name"] for d in manifest["documents"]
                                                            if d["split"] == "train")
    shard = prepare._load_shard(files[0])
    assert shard.dtype == torch.long and shard.ndim == 1
    assert bytes(shard.tolist()) == open(files[0], "rb").read()


def test_validation_split_is_not_available(harness):
    prepare, _ = harness
    for split in ("val", "validation", "test"):
        with pytest.raises(ValueError, match="only 'train'"):
            prepare._get_data_files(split)
        with pytest.raises(ValueError, match="only 'train'"):
            next(prepare.make_dataloader(2, 16, split, "cpu"))


def test_dataloader_windows_are_bos_then_shifted_bytes(harness):
    prepare, dataset = harness
    torch.manual_seed(3)
    loader = prepare.make_dataloader(4, 64, "train", "cpu")
    data = b"".join(open(p, "rb").read() for p in prepare._get_data_files("train"))
    validation = bytes(val_bytes(dataset))
    for _ in range(3):
        x, y = next(loader)
        assert x.shape == y.shape == (4, 64) and x.dtype == y.dtype == torch.long
        assert (x[:, 0] == prepare.BOS_TOKEN).all()
        assert torch.equal(x[:, 1:], y[:, :-1])
        for row in y.tolist():
            assert bytes(row) in data and bytes(row) not in validation
    torch.manual_seed(3)
    again = next(prepare.make_dataloader(4, 64, "train", "cpu"))
    torch.manual_seed(3)
    assert torch.equal(next(prepare.make_dataloader(4, 64, "train", "cpu"))[0], again[0])  # torch's seed decides
    with pytest.raises(ValueError, match="seq_len"):
        next(prepare.make_dataloader(2, 257, "train", "cpu"))


def test_evaluate_bpb_outside_the_service_says_how_to_get_a_score(harness):
    prepare, _ = harness
    with pytest.raises(RuntimeError, match="POST /run"):
        prepare.evaluate_bpb(torch.nn.Linear(1, 1), 8, "cpu")


def test_the_training_budget_comes_from_the_environment_when_not_given(monkeypatch):
    from tools.service.config import TIME_BUDGET_ENV, default_time_budget

    monkeypatch.delenv(TIME_BUDGET_ENV, raising=False)
    assert default_time_budget() == 180.0
    monkeypatch.setenv(TIME_BUDGET_ENV, "2.5")
    assert default_time_budget() == 2.5
