"""One module per `submit` subcommand; each defines `command`."""
