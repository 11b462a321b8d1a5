"""``python -m e2b_tools_mcp [--http HOST:PORT] [--name-prefix PREFIX]``: the MCP server,
as ``e2b-tools mcp``."""

from __future__ import annotations

import argparse
import sys

from e2b_tools import InvalidArgumentError
from e2b_tools.tools import check_name_prefix

from ._serve import parse_address, serve


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until the client or a signal ends it."""
    parser = argparse.ArgumentParser(
        prog="python -m e2b_tools_mcp",
        description=(
            "Serve the e2b-tools sandbox tools over the Model Context Protocol: over "
            "stdio by default, or streamable HTTP at http://HOST:PORT/mcp."
        ),
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP on this address (e.g. 127.0.0.1:8000) instead of stdio",
    )
    parser.add_argument(
        "--name-prefix",
        default="",
        metavar="PREFIX",
        help="put PREFIX before every tool name (e.g. sbx_ gives sbx_run_code)",
    )
    args = parser.parse_args(argv)
    try:
        check_name_prefix(args.name_prefix)
        if args.http is not None:
            parse_address(args.http)
    except InvalidArgumentError as exc:
        parser.error(str(exc))
    serve(args.http, name_prefix=args.name_prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
