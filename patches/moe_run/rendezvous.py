"""Client side of the rendezvous wire protocol (docs/contracts.md; src/launch/protocol.ts).

One TCP connection, newline-delimited JSON. A reader thread takes every server line as it arrives
and notes the local wall clock at that moment (the pong's t3 and the barrier release time come from
there, not from whenever the main thread gets round to looking). Once welcomed, ``abort``, ``error``
and a closed connection call ``on_lost``: the launcher is stopping the run or is gone, so the rank
must not go on. Before the welcome (wrong token, say) ``hello`` raises instead.
"""
import json
import queue
import socket
import threading
from typing import Callable, Optional, Tuple

from moe_run.clock import wall_ns

MAX_LINE_BYTES = 64 * 1024
CLOCK_SAMPLES = 16
REPLY_TIMEOUT_S = 60.0


class RendezvousError(RuntimeError):
    pass


def _split_address(address: str) -> Tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RendezvousError(f"MOE_RUN_RDZV={address!r} is not host:port")
    return host.strip("[]"), int(port)


class RendezvousClient:
    def __init__(self, address: str, token: str, on_lost: Callable[[str], None], connect_timeout_s: float = 60.0):
        self._token = token
        self._on_lost = on_lost
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._welcome: Optional[dict] = None
        self._lost: Optional[str] = None
        self._releases = {}  # barrier name -> (local ns at receipt, reference t_ns)
        self._pongs: "queue.Queue[Tuple[dict, int]]" = queue.Queue()
        self._closing = False
        self._sock = socket.create_connection(_split_address(address), timeout=connect_timeout_s)
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = threading.Thread(target=self._read_loop, name="moe-run-rendezvous", daemon=True)
        self._reader.start()

    # -- sending -------------------------------------------------------------------------------
    def _send(self, msg: dict) -> None:
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        with self._send_lock:
            self._sock.sendall(data)

    def hello(self, rank: int, pid: int, host: str) -> dict:
        self._send({"type": "hello", "token": self._token, "role": "rank", "rank": rank, "pid": pid, "host": host})
        with self._cond:
            if not self._cond.wait_for(lambda: self._welcome is not None or self._lost is not None,
                                       timeout=REPLY_TIMEOUT_S):
                raise RendezvousError("no welcome from the rendezvous")
            if self._welcome is None:
                raise RendezvousError(self._lost)
            return self._welcome

    def sync_clock(self, samples: int = CLOCK_SAMPLES) -> Tuple[int, int]:
        """Ping-pong ``samples`` times; keep the offset (reference - local) of the smallest round trip."""
        best = None
        for _ in range(samples):
            t0 = wall_ns()
            self._send({"type": "ping", "t0": str(t0)})
            try:
                pong, t3 = self._pongs.get(timeout=REPLY_TIMEOUT_S)
            except queue.Empty:
                raise RendezvousError("no pong from the rendezvous")
            t1, t2 = int(pong["t1"]), int(pong["t2"])
            rtt = (t3 - t0) - (t2 - t1)
            offset = ((t1 - t0) + (t2 - t3)) // 2
            if best is None or rtt < best[1]:
                best = (offset, rtt)
        self._send({"type": "clock", "offset_ns": str(best[0]), "rtt_ns": str(best[1])})
        return best

    def status(self, state: str, step: Optional[int] = None, steps: Optional[int] = None,
               detail: Optional[str] = None) -> None:
        """Best effort: a broken connection is the reader thread's to report (on_lost)."""
        msg = {"type": "status", "state": state}
        if step is not None:
            msg["step"] = step
        if steps is not None:
            msg["steps"] = steps
        if detail:
            msg["detail"] = detail[:1000]
        try:
            self._send(msg)
        except OSError:
            pass

    def barrier(self, name: str) -> Tuple[int, Optional[str]]:
        """Enter barrier ``name`` and wait (no timeout here: the server's timeout aborts the run).
        Returns (local wall ns at the release, the server's reference t_ns)."""
        self._send({"type": "barrier", "name": name})
        with self._cond:
            self._cond.wait_for(lambda: name in self._releases)
            return self._releases[name]

    def finished(self) -> None:
        """The rank is past its end barrier: the launcher may close the connection now without that
        stopping the rank."""
        self._closing = True

    def close(self) -> None:
        self._closing = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    # -- receiving -----------------------------------------------------------------------------
    def _read_loop(self) -> None:
        reason = "the rendezvous closed the connection"
        try:
            stream = self._sock.makefile("rb")
            while True:
                line = stream.readline(MAX_LINE_BYTES + 1)
                t_local = wall_ns()
                if not line:
                    break
                if len(line) > MAX_LINE_BYTES:
                    reason = "over-long line from the rendezvous"
                    break
                msg = json.loads(line)
                kind = msg.get("type")
                if kind == "pong":
                    self._pongs.put((msg, t_local))
                elif kind in ("welcome", "release"):
                    with self._cond:
                        if kind == "welcome":
                            self._welcome = msg
                        else:
                            self._releases[msg["name"]] = (t_local, msg.get("t_ns"))
                        self._cond.notify_all()
                elif kind == "abort":
                    reason = f"aborted by the launcher: {msg.get('reason', '')}"
                    break
                elif kind == "error":
                    reason = f"rejected by the rendezvous: {msg.get('reason', '')}"
                    break
        except (OSError, ValueError) as e:
            reason = f"rendezvous connection failed: {e}"
        with self._cond:
            self._lost = reason
            welcomed = self._welcome is not None
            self._cond.notify_all()
        # before the welcome, hello() reports it as this rank's failure; after, the rank must stop
        if welcomed and not self._closing:
            self._on_lost(reason)


class NoRendezvous:
    """Standalone run (no MOE_RUN_RDZV): no barrier to wait at, the local clock is the reference."""

    def status(self, *args, **kwargs) -> None:
        pass

    def finished(self) -> None:
        pass

    def barrier(self, name: str) -> Tuple[int, Optional[str]]:
        return wall_ns(), None

    def close(self) -> None:
        pass
