"""Starts and stops a real `asrd serve` for the end-to-end server tests.

The server runs on a free loopback port (`--port 0`; asrd prints the bound URL as the first line
of stdout), with its data directory in a pytest temp dir and its log (stderr: key=value lines,
one `msg=access` line per request; the web UI's polling GETs only at --log-level debug) in a file
the tests read. Models come from the same root as
the other e2e tests (conftest.py's models_env: $ASRD_MODELS or /tmp/devmodels); a test whose
models are absent is skipped with the reason.

Use:
    srv = AsrdServer(asrd_bin, tmp_path, env, ["--models", "tiny.en"])
    srv.start(); ...; srv.stop()
or the context manager form. Everything here is stdlib only.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import asrdtest


class ServerError(RuntimeError):
    pass


class AsrdServer:
    """One `asrd serve` process."""

    def __init__(self, binary: Path, workdir: Path, env: Dict[str, str],
                 args: Sequence[str] = (), startup_timeout: float = 180.0,
                 wrapper: Sequence[str] = ()):
        self.binary = Path(binary)
        self.wrapper = list(wrapper)  # e.g. ["/usr/bin/time", "-v", "-o", FILE]
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update(env)
        # Settings from the environment of the test runner must not leak into the server.
        for k in list(self.env):
            if k.startswith("ASRD_") and k not in env and k not in ("ASRD_MODELS",):
                del self.env[k]
        self.args = ["serve", "--port", "0", "--data", str(self.workdir / "data"), *args]
        self.startup_timeout = startup_timeout * asrdtest.timeout_scale()
        self.proc: Optional[subprocess.Popen] = None
        self.url = ""
        self.log_path = self.workdir / "asrd.log"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "AsrdServer":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([*self.wrapper, str(self.binary), *self.args],
                                     stdout=subprocess.PIPE,
                                     stderr=self._log, env=self.env, cwd=str(self.workdir))
        deadline = time.monotonic() + self.startup_timeout
        line = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"asrd serve exited with {self.proc.returncode} before "
                                  f"listening:\n{self.log()[-3000:]}")
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                line = self.proc.stdout.readline()
                break
        if not line.startswith(b"http://"):
            self.kill()
            raise ServerError(f"asrd serve printed no URL within {self.startup_timeout:.0f} s "
                              f"(first line {line!r}):\n{self.log()[-3000:]}")
        self.url = line.decode().strip()
        return self

    @property
    def pid(self) -> int:
        """The asrd process (the wrapper's child when there is a wrapper)."""
        if not self.wrapper:
            return self.proc.pid
        kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(kids[0])

    def status_kb(self, field: str) -> int:
        """A /proc/PID/status field in kB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Signals the server and waits; returns its exit code (kills it past `timeout`).
        Raises ServerError when a sanitizer reported in the server's log (a TSan/ASan build of
        asrd: `make test-tsan` runs server tests against one)."""
        if not self.proc:
            return 0
        if self.proc.poll() is None:
            if self.wrapper:
                os.kill(self.pid, sig)  # the wrapper (GNU time) reports when asrd exits
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout * asrdtest.timeout_scale())
            except subprocess.TimeoutExpired:
                self.kill()
                raise ServerError(f"asrd serve did not exit within {timeout} s of signal "
                                  f"{sig}:\n{self.log()[-3000:]}")
        self.proc.stdout.close()
        self._log.close()
        report = sanitizer_report(self.log())
        if report:
            raise ServerError(f"asrd serve: sanitizer report in its log:\n{report}")
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """For openai.OpenAI(base_url=...)."""
        return self.url + "/v1"

    @property
    def host_port(self) -> Tuple[str, int]:
        u = urlsplit(self.url)
        return u.hostname, u.port

    # -- log -------------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def access_lines(self) -> List[Dict[str, str]]:
        """Parsed `msg=access` lines: dicts of their key=value fields."""
        out = []
        for line in self.log().splitlines():
            if "msg=access" not in line:
                continue
            fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
            out.append({k: v.strip('"') for k, v in fields.items()})
        return out

    def wait_access(self, req_id: str, timeout: float = 30.0) -> Dict[str, str]:
        """Waits for the access line of request `req_id` (written when it completes)."""
        deadline = time.monotonic() + timeout * asrdtest.timeout_scale()
        while time.monotonic() < deadline:
            for a in self.access_lines():
                if a.get("req") == req_id:
                    return a
            time.sleep(0.1)
        raise AssertionError(f"no access line for req={req_id} within {timeout} s:\n"
                             f"{self.log()[-2000:]}")

    # -- raw HTTP ------------------------------------------------------------------------

    def raw(self, data: bytes, timeout: float = 30.0, shutdown_write: bool = False) -> bytes:
        """Sends raw bytes on a new connection; returns everything read until the server
        closes it or `timeout` passes (then what was read so far)."""
        s = socket.create_connection(self.host_port, timeout=timeout)
        try:
            try:
                s.sendall(data)
                if shutdown_write:
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may answer early (401, 413) and stop reading: read that
            return read_response(s, timeout)
        finally:
            s.close()


SANITIZER_MARKS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:")


def sanitizer_report(log: str) -> str:
    """The first sanitizer report in a server log (from its first line), or ""."""
    at = min((i for i in (log.find(m) for m in SANITIZER_MARKS) if i >= 0), default=-1)
    return log[max(0, log.rfind("\n", 0, at) + 1):][:6000] if at >= 0 else ""


def read_response(s: socket.socket, timeout: float) -> bytes:
    """Reads one HTTP response (Content-Length or chunked) or until close/timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            break
        if not d:
            break
        buf += d
        if response_complete(buf):
            break
    return buf


def response_complete(buf: bytes) -> bool:
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m:
        return len(body) >= int(m.group(1))
    if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        return body.endswith(b"0\r\n\r\n")
    return False


def parse_response(raw: bytes) -> Tuple[int, Dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of a raw HTTP/1.1 response. Status 0 when
    nothing came back."""
    if not raw:
        return 0, {}, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size_s, _, rest = rest.partition(b"\r\n")
            n = int(size_s.split(b";")[0] or b"0", 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, headers, body


def multipart(fields: Sequence[Tuple[str, object]], boundary: str = "asrdTestBoundary42") \
        -> Tuple[str, bytes]:
    """(content_type, body) of a multipart/form-data body. A field value is str/bytes, or a
    (filename, bytes[, content_type]) tuple for a file part."""
    out = b""
    for name, val in fields:
        out += b"--" + boundary.encode() + b"\r\n"
        if isinstance(val, tuple):
            fname, data = val[0], val[1]
            ctype = val[2] if len(val) > 2 else "application/octet-stream"
            out += (f'Content-Disposition: form-data; name="{name}"; filename="{fname}"\r\n'
                    f"Content-Type: {ctype}\r\n\r\n").encode()
            out += data
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += val if isinstance(val, bytes) else str(val).encode()
        out += b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    return f"multipart/form-data; boundary={boundary}", out


def http_request(method: str, path: str, body: bytes = b"", headers: Optional[dict] = None,
                 host: str = "x") -> bytes:
    """Bytes of an HTTP/1.1 request with Content-Length (when there is a body)."""
    h = {"Host": host, "Connection": "close"}
    if body or method == "POST":
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
    return head.encode("latin-1") + b"\r\n" + body


def error_problems(status: int, body: bytes, param: Optional[str] = None) -> List[str]:
    """Problems with an OpenAI-shaped error body ({"error": {message, type, param, code}})."""
    try:
        doc = json.loads(body)
    except ValueError:
        return [f"body is not JSON: {body[:200]!r}"]
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return [f"no 'error' object: {doc!r}"]
    probs = []
    for k in ("message", "type", "param", "code"):
        if k not in err:
            probs.append(f"error lacks {k!r}")
    if not isinstance(err.get("message"), str) or not err.get("message"):
        probs.append("message is not a non-empty string")
    if not isinstance(err.get("type"), str):
        probs.append("type is not a string")
    if param is not None and err.get("param") != param:
        probs.append(f"param is {err.get('param')!r}, expected {param!r}")
    return probs
