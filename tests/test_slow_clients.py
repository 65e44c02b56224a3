"""Slow clients against a real `serve`: a trickled head or body is dropped, others are served."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from daemon import Daemon
from support import callback_body, signed_headers, write_config

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
SLOWLORIS_CONNECTIONS = 40


async def open_connection(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    address = urlsplit(url)
    assert address.hostname is not None and address.port is not None
    return await asyncio.open_connection(address.hostname, address.port)


async def slowloris(url: str) -> tuple[float, bytes]:
    """Send a request head one byte at a time, never finishing it.

    Returns how long the server kept the connection and what it sent back.
    """
    reader, writer = await open_connection(url)
    opened = time.monotonic()
    head = b"POST /callbacks/cryptum HTTP/1.1\r\nHost: bridge\r\n" + b"X-Padding: a\r\n" * 1000
    received = b""

    async def trickle() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(trickle())
    # The server answers nothing and closes: read() returns b"" at EOF.
    with contextlib.suppress(ConnectionResetError):
        received = await asyncio.wait_for(reader.read(), timeout=HEADER_TIMEOUT + 10)
    closed_after = time.monotonic() - opened
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    writer.close()
    return closed_after, received


async def slow_head_within_the_limit(url: str) -> int:
    """A whole request whose head takes a second: slow, but inside the timeout."""
    body = callback_body(order_id="slow-but-in-time")
    headers = "".join(f"{name}: {value}\r\n" for name, value in signed_headers(body).items())
    head = (
        f"POST /callbacks/cryptum HTTP/1.1\r\nHost: bridge\r\n{headers}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    reader, writer = await open_connection(url)
    for chunk in (head[i : i + 20] for i in range(0, len(head), 20)):
        writer.write(chunk)
        await asyncio.sleep(1.0 / (len(head) / 20))
    writer.write(body)
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1])


async def slow_body(url: str) -> tuple[int, dict[str, str]]:
    """A whole head, then a body that trickles in for longer than the body timeout."""
    reader, writer = await open_connection(url)
    writer.write(
        b"POST /callbacks/cryptum HTTP/1.1\r\nHost: bridge\r\n"
        b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    )

    async def trickle() -> None:
        for _ in range(400):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.1)

    sender = asyncio.create_task(trickle())
    # The answer comes after the body timeout; the close after a short linger.
    answer = await asyncio.wait_for(reader.read(), timeout=BODY_TIMEOUT + 10)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(payload)


async def test_slow_heads_and_bodies_are_dropped_while_others_are_served(
    tmp_path: Path,
) -> None:
    config_path = write_config(
        tmp_path,
        server={
            "listen": "127.0.0.1:0",
            "max_body_bytes": 4096,
            "header_timeout_seconds": HEADER_TIMEOUT,
            "body_timeout_seconds": BODY_TIMEOUT,
        },
    )
    daemon = Daemon(config_path)
    try:
        started = time.monotonic()
        attackers = [
            asyncio.create_task(slowloris(daemon.url)) for _ in range(SLOWLORIS_CONNECTIONS)
        ]
        trickled_body = asyncio.create_task(slow_body(daemon.url))
        in_time = asyncio.create_task(slow_head_within_the_limit(daemon.url))
        await asyncio.sleep(0.3)  # the attackers hold their connections open now

        # Honest callbacks are answered at once while the attackers hang on.
        async with aiohttp.ClientSession() as session:
            for n in range(20):
                body = callback_body(order_id=f"honest-{n}")
                async with session.post(
                    f"{daemon.url}/callbacks/cryptum", data=body, headers=signed_headers(body)
                ) as response:
                    assert response.status == 200
        honest_done = time.monotonic() - started
        assert not any(attacker.done() for attacker in attackers)
        assert honest_done < HEADER_TIMEOUT

        results = await asyncio.gather(*attackers)
        for closed_after, received in results:
            assert received == b""  # closed without an answer
            assert HEADER_TIMEOUT * 0.9 <= closed_after <= HEADER_TIMEOUT + 5

        status, answer = await trickled_body
        assert status == 408
        assert answer == {"error": "request_timeout"}
        assert await in_time == 200

        # The server is still healthy after dropping them.
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{daemon.url}/readyz") as response,
        ):
            assert response.status == 200
    finally:
        assert daemon.stop() == 0
    reasons = [
        event.get("reason") for event in daemon.events() if event["event"] == "callback.rejected"
    ]
    assert reasons.count("body_too_slow") == 1
