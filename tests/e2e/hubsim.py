"""A local stand-in for the Hugging Face hub and for ModelScope, for tests/e2e/test_pull_sources.py.

Serves one set of model files (name -> bytes) for any repo, in either layout, on 127.0.0.1 (port
chosen by the OS), with the real services' API shapes:

  hub         GET /api/models/<owner>/<name>/tree/<rev>   JSON array of {"type","path","size",
                                                           "oid"[, "lfs":{"oid","size",...}]}
              GET /<owner>/<name>/resolve/<rev>/<file>    the bytes; LFS files (over 1 MB) answer
                                                           302 to /cdn/<sha256> with X-Linked-Etag
  modelscope  GET /api/v1/models/<owner>/<name>/repo/files?Revision=R&Recursive=true
                                                           {"Code":200,"Success":true,"Data":
                                                            {"Files":[{"Name","Path","Type",
                                                            "Size","Sha256","Revision"}]}}
              GET /api/v1/models/<owner>/<name>/repo?Revision=R&FilePath=F   the bytes

Byte ranges ("Range: bytes=N-") are honoured with 206 (416 past the end). Faults, set on the
object before or between runs:
  drop[file] = (times, n_bytes)   the next `times` GETs of file send n_bytes, then hang up
  statuses[file] = [503, ...]     the next GETs of file answer these statuses first (None:
                                  serve it); "always", S answers S from then on; key
                                  "listing" for the listing
  listing_patch[file] = {...}     fields overriding file's listing entry (a wrong sha, a size)
  ignore_range = True             answer every GET with the whole file (200), as some servers do
  wrong_range = True              answer a range request with 206 and the whole file (bytes 0-)
  page_size = n                   the hub's listing comes in pages of n entries (Link: rel="next")
  retry_after = "2"               injected statuses carry this Retry-After header
  stall[file] = n_bytes           the next GET of file sends n_bytes, then waits (until close())
Every request is recorded in .requests as (path, query, range header or None).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import urllib.parse
from typing import Dict, List, Optional, Tuple

EXTRA_FILES = {"README.md": b"# a model card\n", ".gitattributes": b"*.bin filter=lfs\n"}
LFS_MIN = 1 << 20


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubSim:
    def __init__(self, layout: str, files: Dict[str, bytes]):
        assert layout in ("hub", "modelscope")
        self.layout = layout
        self.files = dict(files, **EXTRA_FILES)
        self.sha = {n: hashlib.sha256(d).hexdigest() for n, d in self.files.items()}
        self.drop: Dict[str, Tuple[int, int]] = {}
        self.statuses: Dict[str, List] = {}
        self.listing_patch: Dict[str, dict] = {}
        self.ignore_range = False
        self.wrong_range = False
        self.retry_after: Optional[str] = None
        self.page_size = 0
        self.stall: Dict[str, int] = {}
        self.released = threading.Event()
        self.requests: List[Tuple[str, str, Optional[str]]] = []
        self.lock = threading.Lock()
        sim = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                sim._handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    # -- what the tests look at

    def gets(self, file: str) -> List[Optional[str]]:
        """Range headers (None: no range) of every GET of `file`, in order (the hub's redirect
        to /cdn/ is the same GET's second hop and is not counted)."""
        with self.lock:
            return [r for p, q, r in self.requests
                    if not p.startswith("/cdn/") and self._file_of(p, q) == file]

    def repos(self) -> List[str]:
        """owner/name of every listing request."""
        out = []
        with self.lock:
            for p, q, _ in self.requests:
                parts = p.strip("/").split("/")
                if self.layout == "hub" and p.startswith("/api/models/"):
                    out.append("/".join(parts[2:4]))
                elif self.layout == "modelscope" and p.endswith("/repo/files"):
                    out.append("/".join(parts[3:5]))
        return out

    # -- serving

    def _file_of(self, path: str, query: str) -> Optional[str]:
        if self.layout == "hub":
            if path.startswith("/cdn/"):
                sha = path[5:]
                return next((n for n, s in self.sha.items() if s == sha), None)
            if "/resolve/" in path:
                return path.split("/resolve/", 1)[1].split("/", 1)[1]
            return None
        if path.endswith("/repo") and path.startswith("/api/v1/models/"):
            return urllib.parse.parse_qs(query).get("FilePath", [None])[0]
        return None

    def _listing(self, query: str = "") -> Tuple[bytes, dict]:
        entries = []
        for name, data in sorted(self.files.items()):
            if self.layout == "hub":
                e = {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
                if len(data) >= LFS_MIN:
                    e["lfs"] = {"oid": self.sha[name], "size": len(data), "pointerSize": 134}
            else:
                e = {"Name": name, "Path": name, "Type": "blob", "Size": len(data),
                     "Sha256": self.sha[name], "Revision": "0" * 40}
            patch = dict(self.listing_patch.get(name, {}))
            if self.layout == "hub" and "lfs" in patch:
                e["lfs"] = dict(e.get("lfs", {}), **patch.pop("lfs"))
            e.update(patch)
            entries.append(e)
        if self.layout == "hub":
            entries.append({"type": "directory", "path": "onnx", "size": 0, "oid": "0" * 40})
            headers = {}
            if self.page_size:
                at = int(urllib.parse.parse_qs(query).get("cursor", ["0"])[0])
                if at + self.page_size < len(entries):
                    headers["Link"] = '<%s?cursor=%d>; rel="next"' % (self.url + "/api/models/"
                                                                     "x/y/tree/main",
                                                                     at + self.page_size)
                entries = entries[at:at + self.page_size]
            return json.dumps(entries).encode(), headers
        entries.append({"Name": "onnx", "Path": "onnx", "Type": "tree", "Size": 0})
        return json.dumps({"Code": 200, "Success": True, "Message": "",
                           "Data": {"Files": entries}}).encode(), {}

    def _next_status(self, key: str) -> Optional[int]:
        with self.lock:
            plan = self.statuses.get(key)
            if not plan:
                return None
            if plan[0] == "always":
                return plan[1]
            return plan.pop(0)  # None: serve this one

    def _send(self, h, status: int, body: bytes, headers: Optional[dict] = None):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _handle(self, h):
        u = urllib.parse.urlsplit(h.path)
        rng = h.headers.get("Range")
        with self.lock:
            self.requests.append((u.path, u.query, rng))
        is_listing = (self.layout == "hub" and u.path.startswith("/api/models/")) or (
            self.layout == "modelscope" and u.path.endswith("/repo/files"))
        if is_listing:
            st = self._next_status("listing")
            if st:
                return self._send(h, st, b'{"error":"injected"}')
            body, headers = self._listing(u.query)
            return self._send(h, 200, body, dict(headers, **{"Content-Type": "application/json"}))
        name = self._file_of(u.path, u.query)
        if name is None or name not in self.files:
            return self._send(h, 404, b"not found")
        cdn = u.path.startswith("/cdn/")
        st = None if cdn else self._next_status(name)  # statuses: the first hop only
        if st:
            extra = {"Retry-After": self.retry_after} if self.retry_after else None
            return self._send(h, st, b"injected failure", extra)
        data = self.files[name]
        if self.layout == "hub" and len(data) >= LFS_MIN and not u.path.startswith("/cdn/"):
            return self._send(h, 302, b"", {"Location": "/cdn/" + self.sha[name],
                                            "X-Linked-Etag": '"%s"' % self.sha[name],
                                            "X-Linked-Size": str(len(data))})
        start = 0
        if rng and rng.startswith("bytes=") and rng.endswith("-") and not self.ignore_range:
            start = int(rng[6:-1])
            if start >= len(data):
                return self._send(h, 416, b"", {"Content-Range": "bytes */%d" % len(data)})
        body = data[start:]
        if start and self.wrong_range:
            start, body = 0, data
            h.send_response(206)
            h.send_header("Content-Range", "bytes 0-%d/%d" % (len(data) - 1, len(data)))
        else:
            h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        with self.lock:
            times, n = self.drop.get(name, (0, 0))
            if times:
                self.drop[name] = (times - 1, n)
            stall = self.stall.pop(name, None)
        if stall is not None:
            h.wfile.write(body[:stall])
            h.wfile.flush()
            self.released.wait(timeout=300)
            h.close_connection = True
            return
        if times:
            h.wfile.write(body[:n])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        h.wfile.write(body)
