"""One scoring call of the run service, run by the service in a fresh sandboxed process (never by training code).

    python score_call.py --model model.pt2 --tokens tokens.npy --out logits.npy --batch B --vocab V

Loads the run's exported model, runs it on the call's rows [R, L] in chunks of B rows (the last chunk padded with
copies of its last row, dropped again), and writes float32 logits [R, L, V] as a plain .npy. A new process per
call is the point: nothing a model keeps in memory survives from one call to the next, so it cannot recognize a
probe row as a copy of a window it saw in another call.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="score_call.py")
    for flag in ("--model", "--tokens", "--out"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--vocab", type=int, required=True)
    args = parser.parse_args(argv)
    tokens = np.load(args.tokens, allow_pickle=False)
    rows, length = tokens.shape
    program = torch.export.load(args.model).module()
    out = np.lib.format.open_memmap(args.out, mode="w+", dtype=np.float32, shape=(rows, length, args.vocab))
    with torch.no_grad():
        for start in range(0, rows, args.batch):
            chunk = torch.from_numpy(np.ascontiguousarray(tokens[start : start + args.batch], dtype=np.int64))
            real = len(chunk)
            if real < args.batch:
                chunk = torch.cat([chunk, chunk[-1:].expand(args.batch - real, -1)])
            logits = program(chunk)
            if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (args.batch, length, args.vocab):
                shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                print(f"error: model(x) returned {shape}, expected logits [{args.batch}, {length}, {args.vocab}]",
                      file=sys.stderr)
                return 3
            out[start : start + real] = logits[:real].detach().to(torch.float32).numpy()
    out.flush()
    del out
    return 0


if __name__ == "__main__":
    sys.exit(main())
