"""`verify`: the judge's command line. Thin: parse arguments, call the library, print, exit.

Exit codes: 0 = every check passed (warnings allowed), 1 = a check failed, 2 = bad usage or unreadable input.
Each subcommand lives in its own module under tools/verify/commands/ and is imported only when run.
"""

from __future__ import annotations

import click

from tools.clikit import LazyGroup

COMMANDS = {
    "record": "tools.verify.commands.record:command",
    "audit": "tools.verify.commands.audit:command",
    "tokenizer": "tools.verify.commands.tokenizer:command",
    "probes": "tools.verify.commands.probes:command",
    "reproduce": "tools.verify.commands.reproduce:command",
    "pr": "tools.verify.commands.pr:command",
    "all": "tools.verify.commands.all:command",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="parameter-golf-judge", prog_name="verify")
def main() -> None:
    """Judge parameter-golf records: static checks, statistics, tokenizer audit, probes, reproduction.

    \b
    Exit codes: 0 passed, 1 a check failed, 2 bad usage or unreadable input.
    """


if __name__ == "__main__":
    main()
