#!/usr/bin/env python3
"""Load and overhead benchmark for `asrd serve` (stdlib only).

1. Overhead: the latency of one POST /v1/audio/transcriptions of AUDIO against `asrd transcribe`
   of the same file with the same model and decoding settings (greedy, temperature 0, no VAD),
   and against the server's own processing time from its access log (proc_s), so that
   latency - proc_s is what HTTP, the upload, the decode probe and the queue cost.
2. Throughput: requests per minute with --clients concurrent clients, each sending
   --requests requests back to back, for each --parallel value (workers; threads per worker =
   cores / workers).

Usage:
  bench/server_load.py [--asrd build/asrd] [--model tiny.en] [--audio tests/data/audio/en_jfk.wav]
                       [--clients 4] [--requests 3] [--parallel 1,2] [--singles 3]
Models are looked up as asrd does ($ASRD_MODELS, default ~/.cache/asrd/models; /tmp/devmodels as
a fallback for development).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]


def models_dir(model: str) -> str:
    for root in (os.environ.get("ASRD_MODELS"), str(Path.home() / ".cache/asrd/models"),
                 "/tmp/devmodels"):
        if root and (Path(root) / model / "model.bin").is_file():
            return root
    sys.exit(f"model {model} not found (asrd pull {model})")


def multipart(audio: bytes, filename: str, model: str):
    b = "asrdBench7f3a"
    body = (f'--{b}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="response_format"\r\n\r\ntext\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + audio + \
        f"\r\n--{b}--\r\n".encode()
    return f"multipart/form-data; boundary={b}", body


class Server:
    def __init__(self, asrd, mdir, model, extra, tmp):
        self.log_path = Path(tmp) / f"server-{time.time_ns()}.log"
        self.log = open(self.log_path, "wb")
        args = [asrd, "serve", "--port", "0", "--data", str(Path(tmp) / "data"),
                "--models-dir", mdir, "--models", model, "--beam-size", "1", "--no-vad",
                "--log-level", "info", *extra]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        r, _, _ = select.select([self.p.stdout], [], [], 300)
        line = self.p.stdout.readline().decode().strip() if r else ""
        if not line.startswith("http://"):
            self.stop()
            sys.exit(f"server did not start:\n{self.log_path.read_text()[-2000:]}")
        u = urlsplit(line)
        self.host, self.port = u.hostname, u.port

    def post(self, ctype, body):
        c = http.client.HTTPConnection(self.host, self.port, timeout=3600)
        t0 = time.monotonic()
        c.request("POST", "/v1/audio/transcriptions", body,
                  {"Content-Type": ctype, "Content-Length": str(len(body))})
        r = c.getresponse()
        data = r.read()
        dt = time.monotonic() - t0
        rid = r.getheader("X-Request-Id")
        c.close()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {data[:300]!r}")
        return dt, rid, data.decode()

    def proc_s(self, rid):
        for _ in range(50):
            for line in self.log_path.read_text(errors="replace").splitlines():
                if f"req={rid} " in line:
                    m = re.search(r"proc_s=([\d.]+)", line)
                    if m:
                        return float(m.group(1))
            time.sleep(0.1)
        return float("nan")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            self.p.wait(timeout=120)
        self.log.close()


def cli_time(asrd, mdir, model, audio_path, runs):
    times = []
    env = dict(os.environ, ASRD_MODELS=mdir)
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.run([asrd, "transcribe", "--model", model, "--beam-size", "1",
                            "--temperature", "0", str(audio_path)], capture_output=True, env=env)
        times.append(time.monotonic() - t0)
        if p.returncode != 0:
            sys.exit(f"asrd transcribe failed: {p.stderr.decode()[-500:]}")
    return times


def throughput(srv, ctype, body, clients, per_client):
    lat, errors = [], []
    lock = threading.Lock()

    def client():
        for _ in range(per_client):
            try:
                dt, _, _ = srv.post(ctype, body)
                with lock:
                    lat.append(dt)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return len(lat) * 60.0 / wall, wall, lat, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--asrd", default=os.environ.get("ASRD", str(ROOT / "build" / "asrd")))
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--audio", default=str(ROOT / "tests" / "data" / "audio" / "en_jfk.wav"))
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=3, help="per client")
    ap.add_argument("--parallel", default="1,2")
    ap.add_argument("--singles", type=int, default=3)
    a = ap.parse_args()
    mdir = models_dir(a.model)
    audio = Path(a.audio).read_bytes()
    ctype, body = multipart(audio, Path(a.audio).name, a.model)
    print(f"# asrd serve load benchmark: model {a.model}, {Path(a.audio).name}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        srv = Server(a.asrd, mdir, a.model, [], tmp)
        try:
            srv.post(ctype, body)  # warm-up
            singles = []
            for _ in range(a.singles):
                dt, rid, _ = srv.post(ctype, body)
                singles.append((dt, srv.proc_s(rid)))
        finally:
            srv.stop()
        cli = cli_time(a.asrd, mdir, a.model, a.audio, a.singles)
        api_med = statistics.median(d for d, _ in singles)
        proc_med = statistics.median(p for _, p in singles)
        print("\n## single request (median of %d)" % a.singles)
        print(f"API latency (POST to last byte)      {api_med:7.2f} s")
        print(f"  server processing (proc_s)          {proc_med:7.2f} s")
        print(f"  HTTP + upload + probe + queue       {api_med - proc_med:7.3f} s")
        print(f"asrd transcribe (process, incl. load) {statistics.median(cli):7.2f} s")
        print("\n## %d concurrent clients x %d requests" % (a.clients, a.requests))
        print("workers  threads/worker  requests/min  wall s  p50 s  p95 s  errors")
        for par in [int(x) for x in a.parallel.split(",")]:
            threads = max(1, (os.cpu_count() or 1) // par)
            srv = Server(a.asrd, mdir, a.model, ["--max-parallel", str(par), "--threads",
                                                 str(threads), "--max-queue", "64"], tmp)
            try:
                srv.post(ctype, body)
                rpm, wall, lat, errs = throughput(srv, ctype, body, a.clients, a.requests)
            finally:
                srv.stop()
            lat.sort()
            p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")
            print(f"{par:7d}  {threads:14d}  {rpm:12.1f}  {wall:6.1f}  "
                  f"{statistics.median(lat) if lat else float('nan'):5.2f}  {p95:5.2f}  "
                  f"{len(errs)}")
            for e in errs[:3]:
                print("   error:", e)


if __name__ == "__main__":
    main()
