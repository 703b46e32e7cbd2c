"""The pull-request gate stage: which records a PR adds, and every stage run on them (`verify pr`)."""
