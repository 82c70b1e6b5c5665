"""The 128-bin log-mel front end (large-v3, large-v3-turbo; issue 18): `asrd debug mel` on a
model with 128 mel bins equals faster-whisper's FeatureExtractor(feature_size=128) within 1e-4
max abs on every clip of tests/data/audio (MANIFEST.tsv).

The model only fixes n_mels (the mel does not depend on weights): a narrow random model with 128
bins written by CTranslate2's own writer (randmodels.ct2_spec_model, a few MB, cached), so this
runs in `make test` without a large model. Both sides get the same samples: faster-whisper's
decoding of the clip (PyAV, 16 kHz mono s16) written as a 16-kHz WAV, so that what is compared
is the front end, not two audio decoders or resamplers; for the clips already 16-kHz mono 16-bit
WAV, asrd's output on the original file must be the same bit for bit."""

from __future__ import annotations

import wave

import pytest

import asrdtest as t
import randmodels as rm

np = t.import_or_missing("numpy")
CLIPS = list(t.read_manifest())
TOL = 1e-4


@pytest.fixture(scope="module")
def model128():
    return rm.ct2_spec_model(n_mels=128)


def is_native_wav(path) -> bool:
    if path.suffix != ".wav":
        return False
    with wave.open(str(path)) as w:
        return w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2


@pytest.mark.parametrize("clip", CLIPS)
def test_mel128_equals_faster_whisper(model128, clip, tmp_path):
    path = t.audio_dir() / clip
    audio = rm.fw_audio(path)
    wav = tmp_path / (clip + ".16k.wav")
    rm.write_wav16(wav, audio)
    ours = rm.asrd_mel(model128, wav, tmp_path, 128)
    ref = rm.fw_mel(audio, 128)
    assert ref.shape == ours.shape, (ref.shape, ours.shape)
    err = rm.max_abs(ours, ref)
    t.TERMINAL_REPORTS.append((f"mel 128 {clip}", f"{ours.shape[1]} frames, max abs {err:.3g}"))
    assert err <= TOL, f"{clip}: max abs {err:.3g} > {TOL}"
    if is_native_wav(path):
        direct = rm.asrd_mel(model128, path, tmp_path, 128)
        assert np.array_equal(direct, ours), clip


def test_mel128_is_not_mel80(model128, tmp_path):
    """The comparison can fail: the 80-bin front end's output is far from the 128-bin one (the
    filterbank really has 128 rows), and asrd's 80-bin output is within tolerance of
    faster-whisper's 80-bin one (the same harness on a model with 80 bins)."""
    model80 = rm.ct2_spec_model(n_mels=80)
    path = t.audio_dir() / "en_jfk.wav"
    audio = rm.fw_audio(path)
    m80 = rm.asrd_mel(model80, path, tmp_path, 80)
    assert rm.max_abs(m80, rm.fw_mel(audio, 80)) <= TOL
    m128 = rm.fw_mel(audio, 128)
    assert rm.max_abs(m80, m128[:80]) > 0.1
