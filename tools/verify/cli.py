"""`verify`: the judge's command line. Thin: parse arguments, call the library, print, exit.

Exit codes: 0 = every check passed (warnings allowed), 1 = a check failed, 2 = bad usage or unreadable input.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Judge parameter-golf records: static checks, statistics, tokenizer audit, probes, reproduction.

    \b
    Exit codes: 0 passed, 1 a check failed, 2 bad usage or unreadable input.
    """


if __name__ == "__main__":
    main()
