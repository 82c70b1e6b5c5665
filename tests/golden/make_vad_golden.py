#!/usr/bin/env python3
"""Golden Silero VAD probabilities and speech spans from faster-whisper 1.2.1 for
tests/unit/test_vad.c.

Run with the asrd venv (faster-whisper 1.2.1, onnxruntime, numpy 2.x):
    /root/.cache/asrd/venv/bin/python tests/golden/make_vad_golden.py [--audio DIR] [--weights FILE]

Two models run through faster-whisper's own code (faster_whisper.vad.SileroVADModel.__call__,
which batches 512-sample windows, prepends the previous window's last 64 samples as context and
carries the LSTM state across windows, and get_speech_timestamps):

  "v62"   faster-whisper's bundled silero_vad_v6.onnx graph with its initializers replaced by the
          weights of assets/vad/silero-vad-v6.2.0-ggml.bin (the file asrd embeds; f16 tensors
          widened to f32, LSTM gates reordered from PyTorch's i,f,g,o to ONNX's i,o,f,c). Same
          graph, same weights as asrd: the apples-to-apples oracle for asr_vad_process.
  "stock" faster-whisper's bundled silero_vad_v6.onnx as shipped. Its weights are a different
          Silero release than v6.2.0 (every tensor but the STFT basis differs), so its
          probabilities differ from asrd's by up to ~0.7 on speech onsets; its spans are what
          faster-whisper itself returns.

For each case it writes tests/golden/data/vad/<name>.txt, a line-oriented text file:
    n_samples N
    probs W            then W lines "<p_v62> <p_stock>" (%.9g: float32 round trip)
    spans <set> K      then K lines "<start> <end>" (samples), for each set:
        fw_v62 / fw_stock       get_speech_timestamps with VadOptions() defaults
        wcpp_v62                get_speech_timestamps(threshold 0.5, min_speech 250 ms,
                                min_silence 100 ms, speech_pad 30 ms): whisper.cpp's test-vad
                                parameters, faster-whisper's algorithm

and tests/golden/data/vad/synthetic.txt: get_speech_timestamps over made-up probability
sequences (a fake model returns them) with option sets that reach every branch (max-speech
splits with and without an earlier silence, min_silence 0, min_speech filtering, pads larger
than the gaps, a low threshold clamping neg_threshold to 0.01). One block per case:
    case <threshold> <min_speech_ms> <max_speech_s> <min_silence_ms> <speech_pad_ms> <n_samples>
    probs W            then W lines "%.9g"
    spans K            then K lines "<start> <end>"
"""
import argparse
import os
import struct
import wave

import numpy as np
import onnxruntime
import faster_whisper
import faster_whisper.vad as fvad
from faster_whisper.utils import get_assets_path

# (clip, offset, n_samples or None = whole file). The first jfk slice has n % 512 = 500 > 448:
# there faster-whisper's SileroVADModel zeroes the last 64 samples of the final window (its
# `context[-1] = 0` writes through a view of the padded audio), which asrd reproduces. The second
# has n % 512 = 0, where get_speech_timestamps pads a whole window of zeros.
CASES = [
    ("en_jfk", 0, None),
    ("en_three_speakers", 0, None),
    ("zh_noise_dialing", 0, None),
    ("en_jfk", 16000, 512 * 60 + 500),
    ("en_jfk", 40000, 512 * 100),
]


def read_wav_s16(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000, path
        raw = w.readframes(w.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def read_ggml(path):
    """Tensors of the ggml Silero file by name, as float32 arrays in PyTorch (outermost-first)
    shape."""
    b = open(path, "rb").read()
    o = 0

    def i32():
        nonlocal o
        v = struct.unpack_from("<i", b, o)[0]
        o += 4
        return v

    assert i32() == 0x67676D6C, "bad magic"
    n = i32()
    o += n  # type string
    o += 4 * 5  # version x3, window, context
    n_layers = i32()
    o += 4 * (3 * n_layers + 4)
    tensors = {}
    while o < len(b):
        n_dims, name_len, ttype = i32(), i32(), i32()
        ne = [i32() for _ in range(n_dims)]
        name = b[o : o + name_len].decode()
        o += name_len
        count = int(np.prod(ne)) if ne else 1
        dt = {0: np.float32, 1: np.float16}[ttype]
        a = np.frombuffer(b, dt, count, o).astype(np.float32)
        o += count * np.dtype(dt).itemsize
        tensors[name] = a.reshape(ne[::-1])
    return tensors


def onnx_initializers(t):
    """The v6.2.0 weights under faster-whisper's ONNX initializer names and layouts."""

    def gates(m):  # PyTorch i,f,g,o -> ONNX i,o,f,c along axis 0 (4 x 128 rows)
        i, f, g, o = np.split(m, 4, axis=0)
        return np.concatenate([i, o, f, g], axis=0)

    p = "_model."
    init = {
        "encoder.feature_extractor.forward_basis_buffer": t[p + "stft.forward_basis_buffer"],
        "decoder.conv1d.weight": t[p + "decoder.decoder.2.weight"].reshape(1, 128, 1),
        "decoder.conv1d.bias": t[p + "decoder.decoder.2.bias"].reshape(1),
        "onnx::LSTM_209": gates(t[p + "decoder.rnn.weight_ih"])[None],
        "onnx::LSTM_210": gates(t[p + "decoder.rnn.weight_hh"])[None],
        "onnx::LSTM_211": np.concatenate(
            [gates(t[p + "decoder.rnn.bias_ih"]), gates(t[p + "decoder.rnn.bias_hh"])]
        )[None],
    }
    for i in range(4):
        init[f"encoder.conv_layers.{i}.weight"] = t[p + f"encoder.{i}.reparam_conv.weight"]
        init[f"encoder.conv_layers.{i}.bias"] = t[p + f"encoder.{i}.reparam_conv.bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in init.items()}


def v62_model(ggml_path):
    """A faster_whisper.vad.SileroVADModel whose session runs the bundled graph with the v6.2.0
    weights (SessionOptions.add_initializer overrides the model's initializers)."""
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    values = []  # OrtValues must outlive the session
    for name, arr in onnx_initializers(read_ggml(ggml_path)).items():
        v = onnxruntime.OrtValue.ortvalue_from_numpy(arr)
        values.append(v)
        opts.add_initializer(name, v)
    path = os.path.join(get_assets_path(), "silero_vad_v6.onnx")
    model = fvad.SileroVADModel.__new__(fvad.SileroVADModel)
    model.session = onnxruntime.InferenceSession(
        path, providers=["CPUExecutionProvider"], sess_options=opts
    )
    model._keep = values
    return model


def probs_of(model, audio):
    # Exactly get_speech_timestamps' padding; copy because __call__ writes into its input.
    padded = np.pad(audio, (0, 512 - audio.shape[0] % 512))
    return np.asarray(model(padded.copy())).reshape(-1)


def spans_with(model, audio, **kw):
    saved = fvad.get_vad_model
    fvad.get_vad_model = lambda: model  # get_speech_timestamps looks the model up here
    try:
        return fvad.get_speech_timestamps(audio, fvad.VadOptions(**kw))
    finally:
        fvad.get_vad_model = saved


def synthetic_cases():
    rng = np.random.default_rng(20260101)
    opts = [  # threshold, min_speech_ms, max_speech_s, min_silence_ms, speech_pad_ms
        (0.5, 0, float("inf"), 2000, 400),
        (0.5, 250, float("inf"), 100, 30),
        (0.5, 0, 1.0, 100, 30),
        (0.5, 0, 0.5, 0, 0),
        (0.3, 100, 2.0, 300, 200),
        (0.1, 0, 1.5, 50, 1000),
        (0.7, 500, 3.0, 0, 100),
    ]
    cases = []
    for k, o in enumerate(opts):
        for rep in range(3):
            w = int(rng.integers(1, 400))
            # Runs of speech-like and silence-like values with noise around the thresholds.
            level = np.repeat(rng.random(w // 5 + 1), 5)[:w]
            p = np.clip(level + 0.25 * rng.standard_normal(w), 0, 1).astype(np.float32)
            n = (w - 1) * 512 + int(rng.integers(0, 512))
            cases.append((o, n, p))
    return cases


class FakeModel:
    def __init__(self, probs):
        self.probs = probs

    def __call__(self, audio):
        assert audio.shape[0] // 512 == len(self.probs)
        return self.probs[:, None]


def write_synthetic(path):
    lines = []
    for (t, ms, mx, sil, pad), n, p in synthetic_cases():
        spans = spans_with(
            FakeModel(p), np.zeros(n, np.float32), threshold=t, min_speech_duration_ms=ms,
            max_speech_duration_s=mx, min_silence_duration_ms=sil, speech_pad_ms=pad,
        )
        lines.append(f"case {t} {ms} {mx} {sil} {pad} {n}")
        lines.append(f"probs {len(p)}")
        lines += [f"{x:.9g}" for x in p]
        lines.append(f"spans {len(spans)}")
        lines += [f"{s['start']} {s['end']}" for s in spans]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", default=os.path.join(here, "..", "data", "audio"))
    ap.add_argument("--weights", default=os.path.join(here, "..", "..", "assets", "vad",
                                                      "silero-vad-v6.2.0-ggml.bin"))
    ap.add_argument("--out", default=os.path.join(here, "data", "vad"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    assert faster_whisper.__version__ == "1.2.1", faster_whisper.__version__

    write_synthetic(os.path.join(args.out, "synthetic.txt"))
    stock = fvad.get_vad_model()
    v62 = v62_model(args.weights)
    for clip, offset, n in CASES:
        audio = read_wav_s16(os.path.join(args.audio, clip + ".wav"))
        name = clip
        if n is not None:
            audio = audio[offset : offset + n]
            name = f"{clip}_s{offset}_n{n}"
        p62, pst = probs_of(v62, audio), probs_of(stock, audio)
        sets = {
            "fw_v62": spans_with(v62, audio),
            "fw_stock": spans_with(stock, audio),
            "wcpp_v62": spans_with(
                v62, audio, min_speech_duration_ms=250, min_silence_duration_ms=100,
                speech_pad_ms=30,
            ),
        }
        lines = [f"n_samples {audio.shape[0]}", f"probs {len(p62)}"]
        lines += [f"{a:.9g} {b:.9g}" for a, b in zip(p62, pst)]
        for key, spans in sets.items():
            lines.append(f"spans {key} {len(spans)}")
            lines += [f"{s['start']} {s['end']}" for s in spans]
        with open(os.path.join(args.out, name + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(
            f"{name}: {len(p62)} windows, max |v62 - stock| = {np.abs(p62 - pst).max():.4f}, "
            + ", ".join(f"{k} {len(v)}" for k, v in sets.items())
        )
        for key, spans in sets.items():
            print("   ", key, [(s["start"], s["end"]) for s in spans])


if __name__ == "__main__":
    main()
