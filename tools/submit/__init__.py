"""Assembling and accepting records, the leaderboard, and experiment tracking."""
