"""Misbehaving ASR backends for the failover tests (stdlib only: sockets and threads).

Each FaultServer listens on a free loopback port and counts the connections it accepts (`hits`),
so a test can tell whether the router sent it a request. Modes:

  oom500      answers HTTP 500 with the out-of-memory body users see from GPU-backed servers
  oom500json  the same as JSON ({"detail": OOM_JSON_MESSAGE}, as FastAPI-based servers send it:
              a message with double quotes and a new line)
  hang        accepts, reads, and never answers (the router's timeout_ms must end the attempt)
  reset       reads the request head, then resets the connection (RST)
  503         answers 503 with `Retry-After: <retry_after>` and an OpenAI-shaped error
  400         answers 400 "invalid audio" (an input error: must not be retried)
  ok          answers 200 {"text": <ok_text>} (a backend that recovered)
  whispercpp  answers like whisper.cpp's server (examples/server) on /inference only: for the
              form's response_format json (the default) 200 {"text": " <ok_text>\\n"}; text, srt,
              vtt as it renders them; verbose_json in its own shape: task, language (the full
              name), duration, text, and segments {id, text, start, end (seconds, from integer
              centiseconds), tokens, words (its tokens' texts and times), temperature,
              avg_logprob}, one segment per word of
              ok_text (WHISPERCPP_SEGMENTS says their times)

The mode may be changed while the server runs (`srv.mode = "ok"`). Requests seen are kept in
`requests` as (method, path, body bytes) for the modes that read the whole request.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from typing import List, Optional, Tuple

OOM_BODY = (b"Model actor is out of memory, model id: whisper-0\n"
            b"CUDA out of memory. Tried to allocate 1.34 GiB. GPU 0 has a total capacity of "
            b"23.57 GiB of which 11.44 MiB is free. Process 2886328 has 21.22 GiB memory in use.")
OOM_JSON_MESSAGE = ('Model actor is out of memory, model id: "whisper-0"\n'
                    "CUDA out of memory. Tried to allocate 1.34 GiB.")


# (start, end) of the verbose_json segments the whispercpp mode sends. whisper.cpp's server writes
# integer centiseconds times 0.01 (2.9 comes out as 2.9000000000000004) and the duration as a
# float32 (2.9000000953674316).
WHISPERCPP_SEGMENTS = [(0.0, 1.2), (1.2, 2.9)]
WHISPERCPP_DURATION = 2.9


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def form_field(body: bytes, name: str) -> Optional[str]:
    """The value of a multipart/form-data field (the fault servers read only small fields)."""
    m = re.search(rb'name="' + re.escape(name.encode()) + rb'"\r\n(?:[^\r\n]+\r\n)*\r\n(.*?)\r\n--',
                  body, re.S)
    return m.group(1).decode() if m else None


def whispercpp_answer(text: str, fmt: str) -> Tuple[str, bytes]:
    """(content type, body) of whisper.cpp's server for transcript `text` (one segment per word,
    at most len(WHISPERCPP_SEGMENTS)) in response_format `fmt`."""
    words = text.split()
    n = len(WHISPERCPP_SEGMENTS)
    parts = words[:n - 1] + [" ".join(words[n - 1:])] if len(words) > n else words
    segs = [(f" {w}", *WHISPERCPP_SEGMENTS[i]) for i, w in enumerate(parts)]
    full = "".join(s for s, _, _ in segs)
    if fmt == "text":
        return "text/html; charset=utf-8", (full + "\n").encode()
    if fmt in ("srt", "vtt"):
        def ts(x, sep):
            ms = int(round(x * 1000))
            return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"
        sep = "," if fmt == "srt" else "."
        cues = "".join((f"{i + 1}\n" if fmt == "srt" else "") +
                       f"{ts(a, sep)} --> {ts(b, sep)}\n{s}\n\n" for i, (s, a, b) in enumerate(segs))
        return ("application/x-subrip" if fmt == "srt" else "text/vtt"), \
            ((cues if fmt == "srt" else "WEBVTT\n\n" + cues).encode())
    if fmt == "verbose_json":
        out = []
        for i, (s, a, b) in enumerate(segs):
            # its "words" are tokens: here each word in two pieces, the first with the space
            cut = max(2, len(s) // 2)
            mid = round((a + b) * 50)
            pieces = [(s[:cut], round(a * 100), mid), (s[cut:], mid, round(b * 100))]
            out.append({"id": i, "text": s, "start": round(a * 100) * 0.01,
                        "end": round(b * 100) * 0.01,
                        "tokens": [1000 + 2 * i, 1001 + 2 * i],  # it leaves out ids >= EOT
                        "words": [{"word": p, "start": t0 * 0.01, "end": t1 * 0.01,
                                   "t_dtw": -1, "probability": 0.9}
                                  for p, t0, t1 in pieces if p],
                        "temperature": 0.0, "avg_logprob": -0.25})
        return "application/json", json.dumps(
            {"task": "transcribe", "language": "english", "duration": _f32(WHISPERCPP_DURATION),
             "text": full, "segments": out}).encode()
    return "application/json", json.dumps({"text": f"{full}\n"}).encode()


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
        if mode == "oom500json":
            return 500, {"Content-Type": "application/json"}, \
                json.dumps({"detail": OOM_JSON_MESSAGE}).encode()
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
            ctype, body = whispercpp_answer(self.ok_text,
                                            form_field(req[2], "response_format") or "json")
            return 200, {"Content-Type": ctype}, body
        return 200, {"Content-Type": "application/json"}, json.dumps({"text": self.ok_text}).encode()


def wait_until(pred, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
