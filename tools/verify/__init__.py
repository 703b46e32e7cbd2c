"""The judge: checks, statistics, tokenizer audit, reproduction, scorer probes and the pull-request gate."""
