#!/usr/bin/env python3
"""One faster-whisper transcription for bench/compare.sh (the process is timed from outside
with /usr/bin/time -v, so its wall time includes interpreter start, imports and model load).

Prints the transcript on stdout; with --times FILE also writes JSON
{"import_s", "load_s", "transcribe_s", "audio_s", "language", "n_segments"} measured inside
the process, so that faster-whisper's transcribe-only time can be reported beside the totals.
"""

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam-size", type=int, default=1)
    ap.add_argument("--compute-type", default="float32")
    ap.add_argument("--language", default=None, help="fixed language code (none: detect)")
    ap.add_argument("--task", default="transcribe")
    ap.add_argument("--times", default=None, help="write timings as JSON to this file")
    ap.add_argument("audio")
    args = ap.parse_args()

    from faster_whisper import WhisperModel

    t_import = time.perf_counter()
    model = WhisperModel(args.model_dir, device="cpu", compute_type=args.compute_type,
                         cpu_threads=args.threads)
    t_load = time.perf_counter()
    segments, info = model.transcribe(args.audio, beam_size=args.beam_size,
                                      language=args.language or None, task=args.task,
                                      vad_filter=False)
    texts = [s.text for s in segments]  # decoding happens while the generator is consumed
    t_done = time.perf_counter()

    sys.stdout.write("".join(texts).strip() + "\n")
    if args.times:
        with open(args.times, "w", encoding="utf-8") as f:
            json.dump({
                "import_s": t_import - T_START,
                "load_s": t_load - t_import,
                "transcribe_s": t_done - t_load,
                "audio_s": info.duration,
                "language": info.language,
                "n_segments": len(texts),
            }, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
