"""The triggerer's transport puts on the wire exactly the headers httpx built (and the signer signed).

aiohttp adds User-Agent, Accept, Accept-Encoding and Content-Type to a request that lacks them;
a raw server on 127.0.0.1 records the bytes each request arrives as.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from airflow_task_runs.core.aio_transport import AiohttpTransport


async def _heads_received(requests: list[httpx.Request]) -> list[list[str]]:
    """Send ``requests`` (their URL's host and port are replaced) and return each one's header
    lines as the server read them."""
    received: list[list[str]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")[1:-2]
            sizes = [int(v) for k, _, v in (line.partition(": ") for line in lines) if k.lower() == "content-length"]
            await reader.readexactly(sizes[0] if sizes else 0)
            received.append(lines)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = AiohttpTransport(ssl_context=False, limit=4)
    try:
        for request in requests:
            request.url = request.url.copy_with(host="127.0.0.1", port=port)
            request.headers["Host"] = f"127.0.0.1:{port}"
            response = await transport.handle_async_request(request)
            await response.aread()
            await response.aclose()
    finally:
        await transport.aclose()
        server.close()
    return received


def _names(lines: list[str]) -> list[str]:
    """Header names, less the body's framing (aiohttp sends ``Content-Length: 0`` with a bodiless
    DELETE where httpx sends none; the server read exactly the length each one gave)."""
    return sorted(name for line in lines if (name := line.partition(":")[0].lower()) != "content-length")


@pytest.mark.parametrize(
    ("method", "content", "remove"),
    [
        ("GET", None, ()),  # httpx's defaults: aiohttp has nothing to add
        ("GET", None, ("User-Agent", "Accept", "Accept-Encoding")),
        ("POST", b'{"a": 1}', ()),  # a body without a Content-Type (httpx gives raw bytes none)
        ("POST", b"", ("Accept-Encoding",)),
        ("DELETE", None, ("Accept",)),
        ("GET", b'{"q": 1}', ()),  # a GET with a body (OpenSearch-style): still no Content-Type added
    ],
)
def test_the_wire_carries_exactly_the_headers_httpx_built(
    method: str, content: bytes | None, remove: tuple[str, ...]
) -> None:
    client = httpx.Client()
    request = client.build_request(method, "http://placeholder/x", content=content, headers={"X-Signed": "yes"})
    for name in remove:
        del request.headers[name]
    (lines,) = asyncio.run(_heads_received([request]))
    built = sorted(name.lower() for name in request.headers if name.lower() != "content-length")
    assert _names(lines) == built, lines
    assert "x-signed: yes" in [line.lower() for line in lines]
