"""`submit`: assemble a record from training logs, judge it, accept it, regenerate the leaderboard.

Exit codes: 0 = accepted (or would be, with --dry-run), 1 = rejected by a check, 2 = bad usage or unreadable input.
Each subcommand lives in its own module under tools/submit/commands/ and is imported only when run.
"""

from __future__ import annotations

import click

from tools.clikit import LazyGroup

COMMANDS = {
    "record": "tools.submit.commands.record:command",
    "leaderboard": "tools.submit.commands.leaderboard:command",
    "track": "tools.submit.commands.track:command",
    "serve": "tools.service.cli:group",  # the run service (docs/SERVICE.md)
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="parameter-golf-judge", prog_name="submit")
def main() -> None:
    """Turn training logs into verified records and keep leaderboard.md up to date.

    \b
    Exit codes: 0 accepted, 1 rejected by a check, 2 bad usage or unreadable input.
    """


if __name__ == "__main__":
    main()
