"""``foureyes mcp``: the operator's desk as an MCP server, over stdio or streamable HTTP.

Over stdio the server is a child process of the MCP client. Its principal is fixed when it
starts: the one whose token is in ``$FOUREYES_TOKEN``, else the operating-system account,
as on the CLI. Over HTTP every request carries a bearer token, and the SDK checks it with our
``TokenVerifier``. The server publishes the OAuth protected-resource metadata (RFC 9728) that
the MCP authorization spec asks of a resource server. It answers 401 with that metadata's URL
to a request without a valid token, and listens on loopback unless told otherwise.

foureyes issues its own opaque tokens (``foureyes principals``); there is no OAuth flow to
run. The metadata's authorization server is, by default, this server's own origin. Point
``--issuer-url`` at your identity provider if one fronts the server.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Callable

import anyio
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from foureyes.cli.code_location import CodeLocation
from foureyes.mcp_server.token_verifier import PrincipalTokenVerifier, principal_of
from foureyes.mcp_server.tools import register_tools
from foureyes.operations.desk import MCP_HTTP, MCP_STDIO, OperatorDesk
from foureyes.resources.control_plane.principal_book import SCOPES, AccessError, Principal
from foureyes.resources.control_plane.resource import ControlPlaneResource

MCP_PATH = "/mcp"
INSTRUCTIONS = (
    "foureyes supervises AI agents in Dagster pipelines. Agents propose; a supervisor judges every proposal; "
    "some wait for human approval (two people above the four-eyes limit); approved actions are delivered "
    "once through an outbox. Read with agents_status, decisions, proposal, trace, approvals_list, "
    "outbox_list. approve, reject and outbox_retry change state: use them only on the operator's word, "
    "and quote the arguments_digest you showed them."
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_server(
    location: CodeLocation,
    control: ControlPlaneResource,
    caller: Callable[[], Principal],
    channel: str,
    auth: AuthSettings | None = None,
) -> MCPServer:
    server = MCPServer(
        name="foureyes",
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        token_verifier=PrincipalTokenVerifier(control.principals) if auth else None,
        auth=auth,
    )
    register_tools(server, lambda: OperatorDesk(location, control, caller(), channel))
    return server


def serve_stdio(location: CodeLocation, control: ControlPlaneResource) -> None:
    """Serve on stdin/stdout as the environment's principal (nothing else may write to stdout)."""
    principal = control.principals.from_environment()
    try:
        anyio.run(build_server(location, control, lambda: principal, MCP_STDIO).run_stdio_async)
    except* (BrokenPipeError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        _the_client_hung_up()


def _the_client_hung_up() -> None:
    """A client that closes its end mid-session ends the session; it is not an error of the server.

    Whatever is still buffered for it has nowhere to go: stdout points at /dev/null from here, so
    the interpreter's last flush does not report the closed pipe either.
    """
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def http_app(location: CodeLocation, control: ControlPlaneResource, host: str, port: int, issuer_url: str | None):
    """The Starlette app of the streamable HTTP transport, bearer tokens required on ``/mcp``."""
    origin = _origin(host, port)
    resource = f"{origin}{MCP_PATH}"
    auth = AuthSettings(
        issuer_url=issuer_url or origin,
        resource_server_url=resource,
        required_scopes=None,  # each tool checks its own scope: read, approve or operate
        validate_token_resource=False,  # our tokens are issued for this server only
    )
    server = build_server(location, control, _token_principal, MCP_HTTP, auth)
    app = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    # the SDK's metadata lists only the scopes every request needs (none here); ours lists them all
    app.router.routes[0:0] = create_protected_resource_routes(
        resource_url=auth.resource_server_url,
        authorization_servers=[auth.issuer_url],
        scopes_supported=list(SCOPES),
        resource_name="foureyes operator desk",
    )
    return app


def serve_http(
    location: CodeLocation,
    control: ControlPlaneResource,
    host: str,
    port: int,
    issuer_url: str | None,
    on_ready: Callable[[str], None],
) -> None:
    """Bind first (a port in use fails here, as an ``OSError``; port 0 picks one), then serve until interrupted."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    port = listener.getsockname()[1]
    app = http_app(location, control, host, port, issuer_url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))

    async def serve() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: server.serve(sockets=[listener]))
            while not server.started and not server.should_exit:
                await anyio.sleep(0.05)
            if server.started:
                on_ready(f"{_origin(host, port)}{MCP_PATH}")

    anyio.run(serve)


def _origin(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _token_principal() -> Principal:
    token = get_access_token()
    if token is None:  # the SDK refuses such a request before any tool runs
        raise AccessError("no authenticated principal")
    return principal_of(token)
