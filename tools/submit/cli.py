"""`submit`: assemble a record from training logs, judge it, accept it, regenerate the leaderboard.

Exit codes: 0 = accepted (or would be, with --dry-run), 1 = rejected by a check, 2 = bad usage or unreadable input.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Turn training logs into verified records and keep leaderboard.md up to date.

    \b
    Exit codes: 0 accepted, 1 rejected by a check, 2 bad usage or unreadable input.
    """


if __name__ == "__main__":
    main()
