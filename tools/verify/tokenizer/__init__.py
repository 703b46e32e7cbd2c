"""The tokenizer audit stage: is the bpb denominator the true byte count? (`verify tokenizer`)"""
