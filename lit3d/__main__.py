"""``python -m lit3d`` and the ``lit3d`` console script: the analysis subcommands
(:data:`lit3d.commands.COMMANDS`), else the Lightning CLI (:func:`lit3d.cli.main`)."""

import sys


def entry_point() -> None:
    from lit3d.commands import COMMANDS, dispatch

    if sys.argv[1:2] and sys.argv[1] in COMMANDS:
        dispatch(sys.argv[1], sys.argv[2:])
    else:
        from lit3d.cli import main

        main()


if __name__ == "__main__":
    entry_point()
