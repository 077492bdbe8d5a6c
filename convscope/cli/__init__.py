"""The ``convscope`` command: one module per subcommand, listed in :mod:`convscope.cli.main`."""
