"""One module per ``qmail-sim`` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args)``."""
