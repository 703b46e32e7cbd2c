"""One module per `verify` subcommand; each defines `command`."""
