"""Fixtures shared by the run-service tests (tests/test_service_*.py): a tiny byte dataset, a config that keeps a
real run to a few seconds, and training files: honest, lying, looking ahead, snooping. No tests live here."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

from data.sources import Document
from tools.service.config import Budget, ServiceConfig
from tools.service.dataset import write_byte_dataset

WORDS = ("the king queen lord my thou art thee hath love death night sweet fair good of and to in what "
         "shall speak come hence sir madam noble").split()


def tiny_text(seed: int, words: int) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(words // 8):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(8)).capitalize() + ".")
    return "\n".join(lines) + "\n"


def tiny_dataset(root: Path) -> Path:
    """Three training works (~11 KB each) and one validation work (~4.5 KB: 18 windows of 256 bytes)."""
    documents = [Document(f"work{i}_gut.txt", tiny_text(i, 2400), "test") for i in range(3)]
    documents.append(Document("val0_gut.txt", tiny_text(99, 1000), "test", split="val"))
    return write_byte_dataset(root / "dataset", documents)


def tiny_config(root: Path, dataset: Path, **overrides) -> ServiceConfig:
    values = dict(state_dir=root / "state", dataset_dir=dataset, time_budget_s=1.0, grace_s=30.0,
                  eval_allowance_s=90.0, call_timeout_s=60.0, budget=Budget(runs=50, hours=3.0))
    values.update(overrides)
    return ServiceConfig(**values)


# A small causal model: the current byte and the one before it (a trigram's worth of context), trained briefly.
MODEL = '''
import json, os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
import prepare

torch.manual_seed(0)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.here = nn.Embedding(prepare.VOCAB_SIZE, 32)
        self.before = nn.Embedding(prepare.VOCAB_SIZE, 32)
        self.head = nn.Linear(32, prepare.VOCAB_SIZE)

    def forward(self, x):
        previous = torch.cat([torch.full_like(x[:, :1], prepare.BOS_TOKEN), x[:, :-1]], dim=1)
        return self.head(torch.tanh(self.here(x) + self.before(previous))) + LOOKAHEAD(x)


def no_lookahead(x):
    return 0.0


LOOKAHEAD = no_lookahead
'''

TRAIN = '''
model = Model()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
loader = prepare.make_dataloader(16, prepare.MAX_SEQ_LEN, "train", "cpu")
start, steps = time.time(), 0
while time.time() - start < prepare.TIME_BUDGET:
    x, y = next(loader)
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    steps += 1
training_time = time.time() - start
val_bpb = prepare.evaluate_bpb(model, 8, "cpu")
'''

REPORT = '''
print(json.dumps({"val_bpb": val_bpb, "total_steps": steps, "training_time_secs": training_time}))
'''


def honest_code() -> str:
    return MODEL + TRAIN + REPORT


def fake_score_code() -> str:
    """Trains and is scored honestly, then prints a much better number than the service's."""
    return MODEL + TRAIN + REPORT.replace('{"val_bpb": val_bpb', '{"val_bpb": 0.25')


def lookahead_code() -> str:
    """Mixes the next input byte (the target of this position) into each position's logits."""
    cheat = textwrap.dedent('''
        def peek(x):
            following = torch.cat([x[:, 1:], torch.full_like(x[:, :1], prepare.BOS_TOKEN)], dim=1)
            return 8.0 * F.one_hot(following, prepare.VOCAB_SIZE).float()


        LOOKAHEAD = peek
        ''')
    return MODEL + cheat + TRAIN + REPORT


def snooping_code(val_dir: Path, dataset_dir: Path) -> str:
    """An honest model whose code first tries every way it knows to reach the validation text, and reports what
    it found as one JSON line (then prints a fake score)."""
    probe = textwrap.dedent(f'''
        import glob
        found = {{}}
        for path in [{str(val_dir)!r}, {str(dataset_dir)!r} + "/manifest.json", {str(val_dir)!r} + "/val0_gut.txt"]:
            try:
                found[path] = len(open(path, "rb").read()) if not os.path.isdir(path) else os.listdir(path)
            except Exception as problem:
                found[path] = type(problem).__name__
        try:
            prepare._get_data_files("val")
            found["split val"] = "allowed"
        except Exception as problem:
            found["split val"] = type(problem).__name__
        found["train files"] = [os.path.basename(p) for p in prepare._get_data_files("train")]
        found["val in env"] = [k for k, v in os.environ.items() if "val" in v.lower()]
        found["glob"] = sorted(glob.glob({str(dataset_dir.parent)!r} + "/**/val0_gut.txt", recursive=True))[:5]
        print("SNOOP " + json.dumps(found, sort_keys=True), flush=True)
        ''')
    return MODEL + probe + TRAIN + REPORT.replace('{"val_bpb": val_bpb', '{"val_bpb": 0.01')


def overtime_code(sleep_s: float) -> str:
    """Trains past its budget (sleeps) before it asks to be scored."""
    return MODEL + TRAIN.replace("training_time = time.time() - start",
                                 f"time.sleep({sleep_s})\ntraining_time = time.time() - start") + REPORT
