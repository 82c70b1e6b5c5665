"""A stand-in for the Hugging Face hub, for tests/integration/test_pull.sh.

Serves DIR on 127.0.0.1 (port chosen by the OS, printed as "PORT <n>") the way the hub serves LFS
files: GET /<repo>/resolve/main/<file> answers 302 to /cdn/<repo>/resolve/main/<file> with an
X-Linked-Etag header holding the file's sha256 (a wrong one with --bad-etag); the /cdn/ URL serves
the bytes. Missing files are 404.

usage: python3 hub_server.py DIR [--bad-etag]
"""
import hashlib
import http.server
import os
import sys
import urllib.parse

ROOT = os.path.abspath(sys.argv[1])
BAD = "--bad-etag" in sys.argv[2:]


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=ROOT, **kwargs)

    def log_message(self, fmt, *args):
        sys.stderr.write("hub_server: " + (fmt % args) + "\n")

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/cdn/"):
            self.path = path[4:]
            return super().do_GET()
        local = os.path.join(ROOT, path.lstrip("/"))
        if "/resolve/" not in path or not os.path.isfile(local):
            return self.send_error(404)
        with open(local, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if BAD:
            digest = "0" * 64
        self.send_response(302)
        self.send_header("Location", "/cdn" + path)
        self.send_header("X-Linked-Etag", '"%s"' % digest)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("PORT %d" % server.server_address[1], flush=True)
server.serve_forever()
