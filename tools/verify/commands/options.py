"""Options shared by several `verify` commands."""

from __future__ import annotations

import click

RULESET_HELP = (
    "The rules to judge by: a name (a records/<NAME>.toml of the repository: `tracks`, our own tracks, the default; "
    "`parameter-golf`, the public competition's rules) or a .toml file."
)


def ruleset_option(function):
    return click.option("--ruleset", metavar="NAME|FILE", default=None, help=RULESET_HELP)(function)
