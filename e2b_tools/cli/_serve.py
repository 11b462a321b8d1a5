"""``e2b-tools serve``: E2B's REST API on this machine, for the real E2B SDKs.

The server lives in the optional ``e2b_tools_serve`` adapter, loaded by name so the core
never depends on it. Its key and secret are kept in ``serve.json`` in the user's config
directory (mode 0600): the same key across restarts, and the same per-sandbox access
tokens, so a restarted server finds its sandboxes again.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from ._common import CLIError, load_extra

SERVE_MISSING = (
    "the E2B-compatible server is not installed: pip install 'e2b-tools[serve]' (it "
    "brings the e2b_tools_serve adapter, starlette, uvicorn and python-multipart)"
)


def config_path() -> Path:
    """Where the server's key and secret are kept (``$XDG_CONFIG_HOME/e2b-tools``)."""
    return Path(click.get_app_dir("e2b-tools")) / "serve.json"


def load_or_create_config(path: Path, server: ModuleType) -> dict[str, str]:
    """The stored ``{"api_key", "secret"}``, made (mode 0600) on first use with the
    ``server`` adapter's key maker and checked with its key pattern."""
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        data = {"api_key": server.new_api_key(), "secret": secrets.token_hex(32)}
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        return dict(data)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read {path}: {exc}; fix or remove it") from None
    if (
        not isinstance(data, dict)
        or not server.API_KEY_PATTERN.match(str(data.get("api_key", "")))
        or not re.fullmatch(r"[0-9a-f]{32,}", str(data.get("secret", "")))
    ):
        raise CLIError(f"{path} is not a serve config (api_key, secret); remove it")
    if path.stat().st_mode & 0o077:
        raise CLIError(f"{path} is readable by others: chmod 600 {path}")
    return {"api_key": data["api_key"], "secret": data["secret"]}


def _templates(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, image = value.partition("=")
        if not sep or not name or not image:
            raise click.BadParameter(f"{value!r} is not NAME=IMAGE", ctx=ctx, param=param)
        out[name] = image
    return out


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", "", "localhost"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def env_lines(host: str, port: int, envd_port: int, api_key: str) -> list[str]:
    """The ``export`` lines that point the E2B SDKs at the server."""
    base = f"http://{_url_host(host)}"
    return [
        f"export E2B_API_URL={base}:{port}",
        f"export E2B_SANDBOX_URL={base}:{envd_port}",
        f"export E2B_API_KEY={api_key}",
    ]


def _load_server() -> ModuleType:
    return load_extra(
        "e2b_tools_serve", ("starlette", "uvicorn", "python_multipart"), SERVE_MISSING
    )


@click.command("serve", short_help="Serve E2B's API for the real E2B SDKs.")
@click.option(
    "--port",
    default=3000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="port of the REST API (E2B_API_URL)",
)
@click.option(
    "--envd-port",
    default=49983,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="port of the sandboxes' envd and code interpreter (E2B_SANDBOX_URL)",
)
@click.option(
    "--interpreter-port",
    default=49999,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="port of the code interpreter for old SDKs in E2B_DEBUG mode (0: none)",
)
@click.option(
    "--host",
    default="localhost",
    show_default=True,
    help="address to listen on (loopback only unless --allow-remote)",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="allow a non-loopback --host (needs an explicit --api-key)",
)
@click.option(
    "--api-key",
    metavar="KEY",
    envvar="E2B_TOOLS_SERVE_API_KEY",
    help="the key clients must send (e2b_ + hex; default: kept in the config dir)",
)
@click.option(
    "--template",
    "templates",
    multiple=True,
    metavar="NAME=IMAGE",
    callback=_templates,
    help="serve E2B template NAME as IMAGE (repeatable; base and code-interpreter-v1 "
    "are the default image)",
)
@click.option(
    "--internet",
    is_flag=True,
    help="sandboxes get the internet unless a request says allow_internet_access=false "
    "(E2B's default; off unless given)",
)
@click.option(
    "--debug-sandbox",
    is_flag=True,
    help="serve E2B_DEBUG=true clients (e2b 2.31 and later) one shared sandbox; any "
    "local process can use it",
)
@click.option("--print-env", is_flag=True, help="print the export lines for the SDKs and exit")
def serve(
    port: int,
    envd_port: int,
    interpreter_port: int,
    host: str,
    allow_remote: bool,
    api_key: str | None,
    templates: dict[str, str],
    internet: bool,
    debug_sandbox: bool,
    print_env: bool,
) -> int:
    """Serve E2B's REST API so the real E2B SDKs run against e2b-tools sandboxes.

    The control plane (create, list, connect, kill, timeouts) on --port; commands,
    files and run_code (envd and the code interpreter) on --envd-port, and on
    --interpreter-port for old SDKs in E2B_DEBUG mode. See docs/serve.md.

    e2b-tools serve

    eval "$(e2b-tools serve --print-env)"
    """
    server = _load_server()
    if not server.is_loopback(host):
        if not allow_remote:
            raise click.UsageError(
                f"--host {host} is reachable from other machines; pass --allow-remote "
                "and an --api-key to serve there, or keep the default localhost"
            )
        if api_key is None:
            raise click.UsageError("--allow-remote needs an explicit --api-key")
    if api_key is not None and not server.API_KEY_PATTERN.match(api_key):
        raise click.BadParameter(
            "must be 'e2b_' followed by 16 to 128 lowercase hex digits", param_hint="--api-key"
        )
    path = config_path()
    stored = load_or_create_config(path, server)
    key = api_key or stored["api_key"]
    lines = env_lines(host, port, envd_port, key)
    if print_env:
        click.echo("\n".join(lines))
        return 0
    settings = server.ServeSettings(
        api_key=key,
        secret=bytes.fromhex(stored["secret"]),
        templates=templates,
        network="full" if internet else "none",
        debug_sandbox=debug_sandbox,
    )
    click.echo(f"e2b-tools serve: E2B's API on http://{_url_host(host)}:{port}", err=True)
    click.echo("point the E2B SDKs at it with:\n  " + "\n  ".join(lines), err=True)
    try:
        server.serve(
            settings,
            host=host,
            port=port,
            envd_port=envd_port,
            interpreter_port=interpreter_port or None,
        )
    except OSError as exc:
        raise CLIError(f"{exc} (choose other ports with --port / --envd-port)") from None
    return 0
