"""The linear connection pool makes httpcore's decisions: reuse, grow to the bound, wait."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from frugal.upstream.pool import LinearConnectionPool, provider_transport


async def test_the_transport_runs_on_the_linear_pool() -> None:
    transport = provider_transport(httpx.Limits(max_connections=4, max_keepalive_connections=2))
    assert isinstance(transport._pool, LinearConnectionPool)
    await transport.aclose()


@pytest.mark.parametrize(("bound", "keep_alive"), [(3, 3), (3, 1)])
async def test_concurrent_requests_share_at_most_the_bound_of_connections(
    bound: int, keep_alive: int
) -> None:
    """Real sockets: many concurrent requests, at most ``bound`` connections open at once, each
    reused; beyond the keep-alive bound idle ones close."""
    peers: set[int] = set()
    open_now = 0
    most = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        peers.add(writer.get_extra_info("peername")[1])
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(0.01)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            open_now -= 1
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=bound, max_keepalive_connections=keep_alive)
    async with httpx.AsyncClient(transport=provider_transport(limits)) as client:
        replies = await asyncio.gather(
            *(client.get(f"http://127.0.0.1:{port}/{n}") for n in range(30))
        )
        assert all(reply.text == "ok" for reply in replies)
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) <= keep_alive  # idle ones beyond the bound were closed
    server.close()
    await server.wait_closed()
    assert most <= bound
    if keep_alive == bound:
        assert len(peers) == bound  # connections were reused, not reopened per request


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    """The socket poll before reuse: a keep-alive connection the server has since closed is
    replaced, not written to."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # without saying so: the client's connection looks reusable

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with httpx.AsyncClient(transport=provider_transport(limits)) as client:
        for n in range(5):
            await asyncio.sleep(0.05)  # the server's close has arrived
            assert (await client.get(f"http://127.0.0.1:{port}/{n}")).text == "ok"
    server.close()
    await server.wait_closed()
