"""Misbehaving ASR backends for the failover tests (stdlib only: sockets and threads).

Each FaultServer listens on a free loopback port and counts the connections it accepts (`hits`),
so a test can tell whether the router sent it a request. Modes:

  oom500      answers HTTP 500 with the out-of-memory body users see from GPU-backed servers
  hang        accepts, reads, and never answers (the router's timeout_ms must end the attempt)
  reset       reads the request head, then resets the connection (RST)
  503         answers 503 with `Retry-After: <retry_after>` and an OpenAI-shaped error
  400         answers 400 "invalid audio" (an input error: must not be retried)
  ok          answers 200 {"text": <ok_text>} (a backend that recovered)
  whispercpp  answers like whisper.cpp's server: 200 {"text": " <ok_text>\\n"} on /inference only

The mode may be changed while the server runs (`srv.mode = "ok"`). Requests seen are kept in
`requests` as (method, path, body bytes) for the modes that read the whole request.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from typing import List, Optional, Tuple

OOM_BODY = (b"Model actor is out of memory, model id: whisper-0\n"
            b"CUDA out of memory. Tried to allocate 1.34 GiB. GPU 0 has a total capacity of "
            b"23.57 GiB of which 11.44 MiB is free. Process 2886328 has 21.22 GiB memory in use.")


class FaultServer:
    def __init__(self, mode: str, retry_after: int = 2, ok_text: str = "fixed backend"):
        self.mode = mode
        self.retry_after = retry_after
        self.ok_text = ok_text
        self.hits = 0
        self.hit_times: List[float] = []  # time.monotonic() of each accepted connection
        self.requests: List[Tuple[str, str, bytes]] = []
        self._lock = threading.Lock()
        self._held: List[socket.socket] = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> "FaultServer":
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        with self._lock:
            for s in self._held:
                try:
                    s.close()
                except OSError:
                    pass
            self._held.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def count(self) -> int:
        with self._lock:
            return self.hits

    # -- internals -----------------------------------------------------------------------

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.hits += 1
                self.hit_times.append(time.monotonic())
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn: socket.socket, timeout: float = 10.0) \
            -> Optional[Tuple[str, str, bytes]]:
        conn.settimeout(timeout)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = conn.recv(65536)
            if not d:
                return None
            buf += d
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split()[:2]
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        while len(body) < length:
            d = conn.recv(65536)
            if not d:
                break
            body += d
        return method, path, body

    def _serve(self, conn: socket.socket):
        mode = self.mode
        try:
            if mode == "hang":
                with self._lock:
                    self._held.append(conn)
                conn.settimeout(0.5)
                while not self._stop.is_set():  # read and discard until the client gives up
                    try:
                        if not conn.recv(65536):
                            return
                    except socket.timeout:
                        continue
                    except OSError:
                        return
                return
            if mode == "reset":
                conn.settimeout(5)
                try:
                    conn.recv(1024)
                except OSError:
                    pass
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            req = self._read_request(conn)
            if req is None:
                return
            with self._lock:
                self.requests.append(req)
            status, headers, body = self._answer(mode, req)
            head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            conn.sendall(head.encode() + b"\r\n" + body)
        except OSError:
            pass
        finally:
            if mode != "hang":
                try:
                    conn.close()
                except OSError:
                    pass

    def _answer(self, mode: str, req) -> Tuple[int, dict, bytes]:
        def err(msg, typ, code):
            return json.dumps({"error": {"message": msg, "type": typ, "param": None,
                                         "code": code}}).encode()
        if mode == "oom500":
            return 500, {"Content-Type": "text/plain"}, OOM_BODY
        if mode == "503":
            return 503, {"Content-Type": "application/json",
                         "Retry-After": str(self.retry_after)}, \
                err("the server is overloaded", "server_error", "server_is_overloaded")
        if mode == "400":
            return 400, {"Content-Type": "application/json"}, \
                err("could not decode the audio file", "invalid_request_error", "invalid_audio")
        if mode == "whispercpp":
            if req[1] != "/inference":
                return 404, {"Content-Type": "text/plain"}, b"not found"
            return 200, {"Content-Type": "application/json"}, \
                json.dumps({"text": f" {self.ok_text}\n"}).encode()
        return 200, {"Content-Type": "application/json"}, json.dumps({"text": self.ok_text}).encode()


def wait_until(pred, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
