"""The run service (issue 12): participants submit one training file over HTTP; the service runs it in the
sandbox under a time budget, scores the model itself and keeps every run in SQLite.

Layers, top to bottom (imports point down only):

    cli       `submit serve ...`: options, tokens, uvicorn
    api/page  FastAPI routes and the status page: parse, authenticate, call the engine, shape JSON
    engine    the queue: submit (budget, idempotency, numbering), worker threads, restart recovery
    store     SQLite: tokens (hashed), runs; budget (pure arithmetic over a token's runs)
    runner    one run: the training child in the sandbox beside the evaluator thread; outcome (pure decision)
    evaluation/scorer   the scoring exchange: the exported model scored in fresh sandboxed calls, with the probes
    dataset   the Shakespeare works as bytes, split like data/prepare.py
    harness/  the files that run inside the sandbox: `prepare` (imported by training code) and one scoring call

docs/SERVICE.md has the API, the design of the scoring exchange and what is left.
"""
