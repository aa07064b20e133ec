"""A loopback XSUB/XPUB relay for Dynamo's ZMQ event plane in broker mode.

Usage: ``python mockservers/zmq_relay.py XSUB_PORT XPUB_PORT`` (run as a script: it imports only ``zmq``)

In its default "direct" mode each Dynamo event publisher binds ``tcp://0.0.0.0:<random>``. With
``DYN_ZMQ_BROKER_URL="xsub=tcp://127.0.0.1:A , xpub=tcp://127.0.0.1:B"`` the publishers connect to a broker
instead, and this relay is that broker: it binds only 127.0.0.1. Runs in the Dynamo venv (needs ``pyzmq``).
Prints one line ``relay ready`` once both sockets are bound; exits on SIGTERM or SIGINT.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    import zmq

    xsub_port, xpub_port = int(argv[0]), int(argv[1])
    ctx = zmq.Context()
    xsub = ctx.socket(zmq.XSUB)
    xpub = ctx.socket(zmq.XPUB)
    xsub.bind(f"tcp://127.0.0.1:{xsub_port}")
    xpub.bind(f"tcp://127.0.0.1:{xpub_port}")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"relay ready xsub=127.0.0.1:{xsub_port} xpub=127.0.0.1:{xpub_port}", flush=True)
    try:
        zmq.proxy(xsub, xpub)
    except (KeyboardInterrupt, zmq.ContextTerminated):
        pass
    finally:
        xsub.close(linger=0)
        xpub.close(linger=0)
        ctx.term()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
