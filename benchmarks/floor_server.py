"""The floor server: a minimal aiohttp app whose handler reads the request and returns pre-encoded bytes.

    python -m benchmarks.floor_server --body-file resp.json --path /inference/v1/generate [--port 0]

Access log off, default asyncio loop, like the mock. Prints ``floor ready: <url>``; stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from aiohttp import web

from mockservers.app import bind_site, serve_until_signalled
from mockservers.config import MockConfig


def make_app(body: bytes, path: str) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(path, handler)
    return app


async def serve(body: bytes, path: str, host: str, port: int) -> None:
    runner, bound = await bind_site(make_app(body, path), MockConfig(host=host, port=port))
    await serve_until_signalled(runner, f"floor ready: http://{host}:{bound} ({len(body)} bytes at {path})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.floor_server")
    ap.add_argument("--body-file", type=Path, required=True)
    ap.add_argument("--path", default="/inference/v1/generate")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    asyncio.run(serve(args.body_file.read_bytes(), args.path, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
