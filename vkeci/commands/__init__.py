"""One module per `vkeci` subcommand: ``add_arguments(parser)`` (cheap imports only) and ``run(args)``.

``vkeci.cli`` imports a command's module only to build its parser; each ``run`` imports what it needs.
"""
