"""Entry point: builds the argument parser from the subcommand modules and maps errors to exit codes.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``; the parser it adds
carries ``func=run`` via ``set_defaults``. Errors the user can act on (:class:`ConvscopeError`)
print one line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from convscope.cli.common import ArgumentParser
from convscope.errors import ConvscopeError

# Order = order in `convscope --help`.
SUBCOMMANDS = ("layers", "models", "probe", "bench", "live", "record", "gradcam", "guided_backprop", "explain",
               "units", "evaluate")


class _Version(argparse.Action):
    """``--version``, reading the installed version only when asked (importlib.metadata is slow)."""

    def __call__(self, parser, namespace, values, option_string=None):
        import convscope

        print(f"convscope {convscope.__version__}")
        parser.exit()


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="convscope",
        description="See what a convolutional network does: live dashboard, Grad-CAM, guided backprop.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"convscope.cli.{name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("CONVSCOPE_DEBUG") == "1"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        code = args.func(args)
        return int(code or 0)
    except ConvscopeError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
