"""The shared vocabulary: tracks, records, seed runs, the submission schema and the log parser."""
