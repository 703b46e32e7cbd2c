"""Files that run inside the sandbox: `prepare` (the challenge harness, imported by training code) and
`score_call` (one scoring call of the service). They import only torch, numpy and the standard library."""
