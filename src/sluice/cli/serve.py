"""`sluice serve`: run the gateway."""

from __future__ import annotations

import contextlib
import gc
import logging
from pathlib import Path

import typer
from rich.markup import escape

from sluice.cli.common import console, err_console, load_or_exit
from sluice.errors import ConfigError


def serve(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config; omit for the embedded "
                                       "default (local SmolLM2 + MiniLM, SQLite in the working directory)."),
    host: str | None = typer.Option(None, help="Interface to bind (default: server.host, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to listen on (default: server.port, 4000)."),
    log_level: str = typer.Option("info", help="uvicorn log level: critical, error, warning, info, debug."),
    access_log: bool = typer.Option(False, help="Log every request line (costs throughput)."),
    loop: str = typer.Option("uvloop", help="Event loop: uvloop (fastest, measured) or asyncio."),
    http: str = typer.Option("httptools", help="HTTP parser: httptools (fastest, measured) or h11."),
) -> None:
    """Start the OpenAI-compatible gateway."""
    import uvicorn

    from sluice.api import HTTPParser, create_app, uvicorn_config

    if http not in ("httptools", "h11"):
        err_console.print(f"[red]--http:[/] {escape(http)} is not httptools or h11")
        raise typer.Exit(2)
    settings = load_or_exit(config)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        err_console.print(f"[red]config error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    bind_host = host or settings.server.host
    bind_port = settings.server.port if port is None else port
    models = ", ".join(settings.models) or "none"
    # Start-up objects (modules, config, models) never die: keep them out of every future GC pass,
    # and collect less often so a full pass does not land in the middle of a request's stream.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    console.print(f"[bold]sluice[/] gateway on http://{bind_host}:{bind_port}/v1  models: {models}")
    _log_to_stderr(log_level)
    # server.header_timeout_s, body_timeout_s, keep_alive_timeout_s and max_connections bound slow clients
    parser: HTTPParser = "h11" if http == "h11" else "httptools"
    server = uvicorn.Server(uvicorn_config(app, settings.server, host=bind_host, port=bind_port, loop=loop,
                                           http=parser, log_level=log_level, access_log=access_log))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after its graceful shutdown
        server.run()


def _log_to_stderr(level: str) -> None:
    """The gateway's own log lines (backend starts, worker restarts, dropped rows) beside uvicorn's, same look."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:%(padding)s%(message)s"))
    handler.addFilter(_pad_level)
    logger = logging.getLogger("sluice")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def _pad_level(record: logging.LogRecord) -> bool:
    record.padding = " " * max(1, 9 - len(record.levelname))  # uvicorn's "INFO:     " column
    return True
