"""``python -m app.broker [--kind tansu|kafka] [--port N]``: run a broker until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from app.broker import KINDS, make_broker


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.broker",
        description="Run a broker on 127.0.0.1; print its bootstrap URL first, then run until "
        "SIGINT or SIGTERM.",
    )
    parser.add_argument("--kind", choices=KINDS, default="tansu", help="default: tansu")
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: free)")
    parser.add_argument("--pid-file", type=Path, default=None, help="write the broker's pid here")
    parser.add_argument("--log", type=Path, default=None, help="append the broker's output here")
    args = parser.parse_args(argv)
    # While the broker starts, SIGTERM unwinds like Ctrl-C (so `finally` stops the broker). Once
    # it runs, both are blocked and taken by sigwait: blocked only now, after the broker was
    # forked, since a child inherits the signal mask and would ignore our SIGTERM.
    signal.signal(signal.SIGTERM, _interrupt)
    broker = make_broker(args.kind, args.port, args.log)
    try:
        broker.start()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        if args.pid_file:
            args.pid_file.write_text(str(broker.pid))
        print(broker.url, flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        return 130
    finally:
        broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
