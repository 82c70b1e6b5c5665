"""`asrd version`: the backends built in and the CUDA devices found, and the CUDA libraries opened
at run time (never linked), so that one binary runs where no GPU, driver or CUDA library exists.

On a machine without a usable CUDA device (no driver, no device, CUDA_VISIBLE_DEVICES empty) the
output must say why in one line, and `auto` must fall back to the CPU with that reason. On a GPU
machine each device gets a line and `auto` picks cuda:0 (or says why not).

Whether the binary has the CUDA backend is read from the CMakeCache.txt next to it (ASR_CUDA and
the CUDA compiler found); without a cache (a binary copied elsewhere) either answer is accepted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import asrdtest


def version(asrd: Path, **env_extra: str) -> list[str]:
    env = dict(os.environ)
    env.update(env_extra)
    r = asrdtest.run_asrd(["version"], timeout=60.0, env=env)
    assert r.returncode == 0, f"asrd version exited {r.returncode}: {r.stderr}"
    assert r.stdout.strip(), "asrd version printed nothing"
    return r.stdout.splitlines()


def line(lines: list[str], prefix: str) -> Optional[str]:
    for ln in lines:
        if ln.startswith(prefix):
            return ln
    return None


def cuda_built(asrd: Path) -> Optional[bool]:
    cache = asrd.resolve().parent / "CMakeCache.txt"
    if not cache.is_file():
        return None
    text = cache.read_text(errors="replace")
    mode = re.search(r"^ASR_CUDA:STRING=(\S*)", text, re.M)
    nvcc = re.search(r"^CMAKE_CUDA_COMPILER:[A-Z]+=(\S*)", text, re.M)
    if mode and mode.group(1) == "off":
        return False
    return bool(nvcc and nvcc.group(1) and not nvcc.group(1).endswith("NOTFOUND"))


def gpu_driver_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists()


def test_version_names_backends_and_devices(asrd):
    lines = version(asrd)
    assert re.match(r"^asrd \d+\.\d+\.\d+", lines[0]), lines[0]
    backends = line(lines, "backends:")
    assert backends, f"no 'backends:' line in {lines}"
    assert re.search(r"\bcpu\b", backends), backends
    assert "cuda" in backends, f"the backends line does not mention CUDA: {backends}"
    built = cuda_built(asrd)
    cuda_in = "not built" not in backends
    if built is not None:
        assert cuda_in == built, f"CMakeCache says CUDA built={built}: {backends}"
    if cuda_in:
        # the architectures compiled for (CMakeLists.txt's default: 80, 89, 90 + PTX)
        assert any("sm_" in ln for ln in lines), f"no architectures listed: {lines}"

    auto = line(lines, "auto:")
    assert auto, f"no 'auto:' line in {lines}"
    none = line(lines, "cuda devices: none")
    if none:
        reason = re.search(r"\((.+)\)\s*$", none)
        assert reason and len(reason.group(1)) > 10, f"no reason given: {none}"
        assert auto.startswith("auto: cpu"), auto
        assert reason.group(1) in auto, f"auto does not give the reason: {auto}"
        if cuda_in and not gpu_driver_present():
            assert "driver" in reason.group(1).lower(), reason.group(1)
    else:
        devs = [ln for ln in lines if re.match(r"^cuda:\d+ ", ln)]
        assert devs, f"neither devices nor a reason: {lines}"
        assert auto.startswith("auto: cuda:") or "compute capability" in auto, auto


def test_version_with_cuda_hidden(asrd):
    """CUDA_VISIBLE_DEVICES="" hides every device: still a clean answer with a reason."""
    lines = version(asrd, CUDA_VISIBLE_DEVICES="")
    none = line(lines, "cuda devices: none")
    assert none, f"devices listed although CUDA_VISIBLE_DEVICES is empty: {lines}"
    assert line(lines, "auto:").startswith("auto: cpu"), lines


def test_cuda_libraries_not_linked(asrd):
    """The CUDA runtime is static and cuBLAS/NVML/the driver are opened at run time: the binary
    must start where none of them is installed."""
    ldd = shutil.which("ldd")
    if not ldd:
        asrdtest.missing("ldd")
    r = subprocess.run([ldd, str(asrd)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    libs = [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]
    bad = [lib for lib in libs if re.match(r"lib(cudart|cublas|cublasLt|cuda|nvidia-ml)\.so", lib)]
    assert not bad, f"asrd links CUDA libraries dynamically: {bad}"


def test_cublas_missing_is_a_reason(asrd):
    """cuBLAS is opened at run time: a missing library is a reason in the output, not a failed
    start (ASRD_CUBLAS names the one file to open)."""
    if cuda_built(asrd) is False:
        return
    lines = version(asrd, ASRD_CUBLAS="/nonexistent/libcublas.so.13")
    text = "\n".join(lines)
    if "not built" in (line(lines, "backends:") or ""):
        return
    assert "cuBLAS not found" in text and "/nonexistent/libcublas.so.13" in text, text
    if gpu_driver_present():
        # a device without cuBLAS is no usable device
        assert line(lines, "auto:").startswith("auto: cpu"), lines
