"""--device and --max-batch on the command line and in serve's settings (issue 19, docs/GPU.md):
`cuda` without a usable CUDA device is one line and exit 2 (transcribe, serve, bench), a value that
is no device is exit 2, `auto` runs on the CPU here and says why no GPU, the `device` setting is
honoured from a config file and the environment, the GPU compute types pass the CLI (the engine
decides), `asrd version` names the backends and what auto picks, `asrd bench --streams` reports
RTFx and the batching counters, and the GPU engine on the host reference device (`--device host`,
float32) transcribes to the same text as the CPU engine.

Models: a random-weight tiny (`asrd debug random-model`, cached by randmodels.py): its text is
garbage, but the same garbage on both engines. Everything here runs without a GPU; on a machine
with a usable CUDA device the "no GPU" cases skip (they cannot happen there).
"""

import json
import os
import signal
import subprocess
import time

import pytest

import asrdtest as t
import randmodels

CLIP = "en_ldc93s1.wav"  # 2.9 s: one window


@pytest.fixture(scope="module")
def tiny():
    return randmodels.model_path(randmodels.asrd_random("tiny", "ct2", compute_type="float16"))


@pytest.fixture(scope="module")
def gpu_usable():
    proc = t.run_asrd(["version"], timeout=60)
    assert proc.returncode == 0, t.describe(proc)
    return "auto: cuda:" in proc.stdout


def clip():
    return str(t.audio_dir() / CLIP)


def one_line(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, t.describe(proc)
    return lines[0]


@pytest.fixture(autouse=True)
def no_device_in_env(monkeypatch):
    """The tests set ASRD_DEVICE themselves where they mean to."""
    monkeypatch.delenv("ASRD_DEVICE", raising=False)


def serve_args(model, tmp_path, *extra):
    return ["serve", "--port", "0", "--data", str(tmp_path / "data"), "--models", str(model),
            "--preload", *extra]


def test_version_names_backends_and_auto(asrd):
    proc = t.run_asrd(["version"], timeout=60)
    assert proc.returncode == 0, t.describe(proc)
    out = proc.stdout
    assert out.startswith("asrd "), out
    assert "backends: cpu, host (reference)" in out, out
    assert "\nauto: " in out, out


@pytest.mark.parametrize("cmd", ["transcribe", "bench", "serve"])
def test_cuda_without_gpu_is_one_line_exit_2(asrd, tiny, tmp_path, gpu_usable, cmd):
    if gpu_usable:
        pytest.skip("a CUDA device is usable here")
    args = {"transcribe": ["transcribe", "--model", str(tiny), "--device", "cuda", clip()],
            "bench": ["bench", "--model", str(tiny), "--device", "cuda", "--streams", "1"],
            "serve": serve_args(tiny, tmp_path, "--device", "cuda")}[cmd]
    proc = t.run_asrd(args, timeout=120)
    assert proc.returncode == 2, t.describe(proc)
    line = one_line(proc)
    assert "cuda" in line and "no usable CUDA device" in line, line
    assert proc.stdout == "", t.describe(proc)


@pytest.mark.parametrize("cmd", ["transcribe", "bench"])
@pytest.mark.parametrize("value", ["bogus", "cuda:x", "cuda:-1", "gpu", "CUDA"])
def test_not_a_device_is_exit_2(asrd, tiny, cmd, value):
    args = ["transcribe", "--model", str(tiny), "--device", value, clip()] if cmd == "transcribe" \
        else ["bench", "--model", str(tiny), "--device", value, "--streams", "1"]
    proc = t.run_asrd(args, timeout=60)
    assert proc.returncode == 2, t.describe(proc)
    line = one_line(proc)
    assert f"'{value}'" in line and "cpu, cuda, cuda:N or auto" in line, line


def test_cuda_index_out_of_range_is_exit_2(asrd, tiny):
    proc = t.run_asrd(["transcribe", "--model", str(tiny), "--device", "cuda:1000", clip()],
                      timeout=60)
    assert proc.returncode == 2, t.describe(proc)
    assert "cuda:1000" in one_line(proc)


def test_auto_runs_on_the_cpu_and_says_why(asrd, tiny, gpu_usable):
    if gpu_usable:
        pytest.skip("a CUDA device is usable here: auto picks it")
    proc = t.run_asrd(["transcribe", "--model", str(tiny), "--device", "auto", "--temperature",
                       "0", clip()], timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip(), t.describe(proc)
    line = one_line(proc)
    assert line.startswith("asrd: device cpu"), line
    assert "--device auto" in line and "no usable CUDA device" in line, line


def test_default_device_is_auto_and_quiet_on_the_cpu(asrd, tiny, gpu_usable):
    """Without --device, a run on the CPU prints nothing more than before (scripts read stderr);
    the same text as --device cpu."""
    if gpu_usable:
        pytest.skip("a CUDA device is usable here: the default picks it and says so")
    args = ["transcribe", "--model", str(tiny), "--temperature", "0"]
    proc = t.run_asrd(args + [clip()], timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", t.describe(proc)
    cpu = t.run_asrd(args + ["--device", "cpu", clip()], timeout=300)
    assert cpu.returncode == 0 and cpu.stdout == proc.stdout, t.describe(cpu)


def test_asrd_device_environment_is_the_default(asrd, tiny):
    proc = t.run_asrd(["transcribe", "--model", str(tiny), clip()], timeout=60,
                      env={"ASRD_DEVICE": "bogus"})
    assert proc.returncode == 2 and "'bogus'" in one_line(proc), t.describe(proc)


def test_gpu_compute_types_reach_the_engine(asrd, tiny):
    """float16 and int8_float16 are not refused by the CLI's parsing (exit 2): the engine says
    what the device supports (exit 1, one line)."""
    for ct in ("float16", "int8_float16"):
        proc = t.run_asrd(["transcribe", "--model", str(tiny), "--device", "cpu",
                           "--compute-type", ct, clip()], timeout=60)
        assert proc.returncode == 1, t.describe(proc)
        assert ct in one_line(proc), t.describe(proc)
        cfg = t.run_asrd(["serve", "--compute-type", ct, "--print-config"], timeout=30)
        assert cfg.returncode == 0 and f"compute_type = {ct}\n" in cfg.stdout, t.describe(cfg)


def test_max_batch_option(asrd, tiny):
    proc = t.run_asrd(["transcribe", "--model", str(tiny), "--max-batch", "0", clip()],
                      timeout=60)
    assert proc.returncode == 2 and "--max-batch" in one_line(proc), t.describe(proc)
    cfg = t.run_asrd(["serve", "--max-batch", "24", "--print-config"], timeout=30)
    assert cfg.returncode == 0 and "max_batch = 24\n" in cfg.stdout, t.describe(cfg)
    bad = t.run_asrd(["serve", "--max-batch", "-1", "--print-config"], timeout=30)
    assert bad.returncode == 2 and "max_batch" in bad.stderr, t.describe(bad)


def test_config_device_setting(asrd, tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("device = cuda:3\nmax_batch = 8\n")
    proc = t.run_asrd(["serve", "--config", str(conf), "--print-config"], timeout=30)
    assert proc.returncode == 0, t.describe(proc)
    assert "device = cuda:3\n" in proc.stdout and "max_batch = 8\n" in proc.stdout, proc.stdout
    # the environment over the file, the flag over both
    proc = t.run_asrd(["serve", "--config", str(conf), "--print-config"], timeout=30,
                      env={"ASRD_DEVICE": "cpu"})
    assert "device = cpu\n" in proc.stdout, t.describe(proc)
    proc = t.run_asrd(["serve", "--config", str(conf), "--device", "host", "--print-config"],
                      timeout=30, env={"ASRD_DEVICE": "cpu"})
    assert "device = host\n" in proc.stdout, t.describe(proc)
    default = t.run_asrd(["serve", "--print-config"], timeout=30)
    assert "device = auto\n" in default.stdout, t.describe(default)
    for bad in ("gpu", "cuda:", "cuda:99999"):
        conf.write_text(f"device = {bad}\n")
        proc = t.run_asrd(["serve", "--config", str(conf), "--print-config"], timeout=30)
        assert proc.returncode == 2, t.describe(proc)
        assert f"'{bad}'" in proc.stderr.splitlines()[0], t.describe(proc)


def start_server(args, tmp_path):
    """Starts asrd serve; returns (process, url, stderr path) once it printed its URL."""
    err = tmp_path / "serve.err"
    p = subprocess.Popen([str(t.asrd_bin()), *map(str, args)], stdout=subprocess.PIPE,
                         stderr=open(err, "w"), text=True)
    url = p.stdout.readline().strip()
    return p, url, err


def stop_server(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60 * t.timeout_scale())
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def test_serve_logs_the_device_from_the_config(asrd, tiny, tmp_path, gpu_usable):
    """serve resolves `device` before loading and logs it (msg=device); the model loaded on it
    (msg=model_loaded device=...). The config file's `device = host` is what runs."""
    conf = tmp_path / "s.conf"
    conf.write_text("device = host\ncompute_type = float32\n")
    p, url, err = start_server(serve_args(tiny, tmp_path, "--config", conf), tmp_path)
    try:
        assert url.startswith("http://"), err.read_text()
        deadline = time.monotonic() + 30 * t.timeout_scale()
        text = err.read_text()
        while "msg=model_loaded" not in text and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the log with a deadline, not a synchronisation sleep
            text = err.read_text()
    finally:
        stop_server(p)
    text = err.read_text()
    assert 'msg=device device=host asked=host why="host: ' in text, text
    assert "msg=model_loaded" in text and "device=host" in text, text
    if not gpu_usable:
        # auto on this machine: the CPU, with the reason in the log
        p, url, err2 = start_server(serve_args(tiny, tmp_path / "b"), tmp_path)
        stop_server(p)
        text = err2.read_text()
        assert "msg=device device=cpu asked=auto" in text and "no usable CUDA device" in text, \
            text


def test_bench_streams_reports_rtfx_and_batching(asrd, tiny):
    """Two streams on the GPU engine (host reference device): one shared model batches their
    encoder windows; the JSON has every figure docs/GPU.md's table reads."""
    proc = t.run_asrd(["bench", "--model", str(tiny), "--device", "host", "--compute-type",
                       "float32", "--streams", "2", "--windows", "1", "--tokens", "4",
                       "--warmup", "0", "--json"], timeout=600)
    assert proc.returncode == 0, t.describe(proc)
    doc = json.loads(proc.stdout)
    assert doc["mode"] == "streams" and doc["device"] == "host", doc
    assert doc["streams"] == 2 and doc["windows"] == 2 and doc["tokens"] == 4, doc
    assert doc["audio_s"] == 60.0 and doc["rtfx"] > 0 and doc["tokens_per_s"] > 0, doc
    assert abs(doc["rtfx"] - doc["audio_s"] / doc["wall_s"]) < 0.01 * doc["rtfx"] + 0.01, doc
    b = doc["batch"]
    assert b["enc_windows"] == 2 and 1 <= b["enc_batches"] <= 2, b
    # 4 tokens after the prompt for each stream: every decoder row counted once
    assert b["dec_streams"] >= 2 * 4 and b["max_dec_streams"] <= 2, b
    assert doc["host_peak_rss_bytes"] > 0, doc
    assert doc["device_memory"]["source"] == "none", doc  # not a CUDA device
    # the same run on the CPU engine: no batching counters, same shape of report
    cpu = t.run_asrd(["bench", "--model", str(tiny), "--device", "cpu", "--streams", "2",
                      "--windows", "1", "--tokens", "4", "--warmup", "0", "--json"], timeout=600)
    assert cpu.returncode == 0, t.describe(cpu)
    c = json.loads(cpu.stdout)
    assert c["device"] == "cpu" and c["windows"] == 2 and c["batch"]["enc_batches"] == 0, c


def test_bench_breakdown_stays_on_the_cpu(asrd, tiny):
    proc = t.run_asrd(["bench", "--model", str(tiny), "--device", "host"], timeout=60)
    assert proc.returncode == 2 and "--streams" in one_line(proc), t.describe(proc)


def test_host_device_transcribes_like_the_cpu(asrd, tiny):
    """The GPU engine's orchestration on the host reference device, float32: the same text as the
    CPU engine (greedy, no fallback)."""
    args = ["transcribe", "--model", str(tiny), "--temperature", "0", "--compute-type",
            "float32"]
    cpu = t.run_asrd(args + ["--device", "cpu", clip()], timeout=300)
    host = t.run_asrd(args + ["--device", "host", clip()], timeout=600)
    assert cpu.returncode == 0 and host.returncode == 0, t.describe(host)
    assert host.stdout.strip() and host.stdout == cpu.stdout, (cpu.stdout, host.stdout)
    assert one_line(host).startswith("asrd: device host"), t.describe(host)


def test_device_scripts_parse():
    for s in ("device-check.sh", "device-pack.sh"):
        path = t.source_dir() / "scripts" / s
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
