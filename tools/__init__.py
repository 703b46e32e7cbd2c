"""Parameter-golf tooling: the record model, the judge (`verify`) and the publisher (`submit`)."""
