"""Options shared by several `verify` commands."""

from __future__ import annotations

import sys

import click

RULESET_HELP = (
    "The rules to judge by: a name (a records/<NAME>.toml of the repository: `tracks`, our own tracks, the default; "
    "`parameter-golf`, the public competition's rules) or a .toml file."
)


def ruleset_option(function):
    return click.option("--ruleset", metavar="NAME|FILE", default=None, help=RULESET_HELP)(function)


def require_sandbox(unisolated: bool) -> None:
    """Fail closed: exit 2 with one line when the sandbox cannot run record code here, unless --unisolated was
    given (then say loudly that nothing the child does is contained, and that the verdict is never evidence)."""
    from tools.verify.sandbox import UNISOLATED_WARNING, cli_refusal

    refusal = cli_refusal(unisolated)
    if refusal:
        click.echo(refusal, err=True)
        sys.exit(2)
    if unisolated:
        click.echo(UNISOLATED_WARNING, err=True)
