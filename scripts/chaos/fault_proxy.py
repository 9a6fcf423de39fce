#!/usr/bin/env python3
"""A loopback TCP proxy that injects seeded, random faults into S3 traffic.

    fault_proxy.py --upstream 127.0.0.1:PORT --seed S --rate 0.3
    prints "endpoint=http://127.0.0.1:PORT" once it listens; runs until killed.

Each new connection draws one fault with probability --rate (else it passes whole):
  503      answers the first request with HTTP 503 SlowDown and closes
  reset    closes the connection at once (a reset)
  lost     forwards the first request, drops its reply, closes (the work is done, the
           client never hears of it)
  truncate forwards the reply only up to a random byte count, then closes
  delay    holds the first request 0.2 to 1.5 s, then passes everything
  stall    forwards the reply up to a random byte count, then goes silent until the
           client gives up
Standard library only; loopback only; every connection is bounded to 60 s.
"""
import argparse
import asyncio
import random
import sys

SLOWDOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
    b"Content-Length: 111\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
)
FAULTS = ["503", "reset", "lost", "truncate", "delay", "stall"]


async def pump(reader, writer, limit=None):
    """Copies until EOF (or `limit` bytes); returns the bytes copied."""
    sent = 0
    while True:
        want = 65536 if limit is None else min(65536, limit - sent)
        if want <= 0:
            return sent
        data = await reader.read(want)
        if not data:
            return sent
        writer.write(data)
        await writer.drain()
        sent += len(data)


async def handle(client_r, client_w, upstream, rng, rate, counts):
    fault = rng.choice(FAULTS) if rng.random() < rate else "pass"
    counts[fault] = counts.get(fault, 0) + 1
    try:
        if fault == "reset":
            return
        if fault == "503":
            await client_r.read(65536)
            client_w.write(SLOWDOWN)
            await client_w.drain()
            return
        host, port = upstream
        server_r, server_w = await asyncio.open_connection(host, port)
        if fault == "delay":
            first = await client_r.read(65536)
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            server_w.write(first)
            await server_w.drain()
        up = asyncio.create_task(pump(client_r, server_w))
        if fault == "lost":
            # Let the request reach the server, then drop whatever it answers.
            await asyncio.sleep(0.3)
            return
        if fault in ("truncate", "stall"):
            await pump(server_r, client_w, limit=rng.randint(0, 200_000))
            if fault == "stall":
                await asyncio.sleep(60)
            return
        await pump(server_r, client_w)
        up.cancel()
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        client_w.close()


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.3, help="share of faulty connections")
    args = p.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    rng = random.Random(args.seed)
    counts = {}

    async def on_connect(r, w):
        try:
            await asyncio.wait_for(handle(r, w, (host, int(port)), rng, args.rate, counts), 60)
        except asyncio.TimeoutError:
            w.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    print(f"endpoint=http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    try:
        async with server:
            await server.serve_forever()
    finally:
        print("faults=" + ",".join(f"{k}:{v}" for k, v in sorted(counts.items())), file=sys.stderr)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
