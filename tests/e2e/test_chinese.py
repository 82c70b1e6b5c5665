"""Chinese output (issue 17): Simplified by default everywhere, and one rule for English-only
models.

- The server setting chinese_script (auto|simplified|traditional, default simplified) applies to a
  request that names no script and no regional tag, also when zh is detected: a zh clip that base
  writes in Traditional characters comes back with no Traditional-only character through
  /v1/audio/transcriptions, the jobs API (POST /api/recordings/{id}/transcribe) and the web UI
  (中文（简体） and the detected language), and from `asrd transcribe` (whose default is the same).
  A regional tag (zh-TW) and the request's own chinese_script (auto, traditional) still win; a
  server started with chinese_script=auto leaves the text as the model wrote it.
- An English-only model (tiny.en) asked for another language: CLI one line and exit 2, /v1 a 400
  in OpenAI's error shape (param "language", naming the model and the language), jobs a 400 at
  creation.

Traditional-only characters: zh_traditional_only.txt, generated from OpenCC's character table by
make_zh_traditional_only.py (see there). The clip: base writes it as 廣州市佛地產中間協會分析.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import asrdtest as t
import jobsutil
from server_fixture import AsrdServer, error_problems

requests = t.import_or_missing("requests")

ZH = "zh_aishell_bac009s0724w0121.wav"  # base, as decoded: Traditional characters
TRAD_ONLY = frozenset((Path(__file__).resolve().parent / "zh_traditional_only.txt")
                      .read_text(encoding="utf-8").strip())


def clip(name: str = ZH) -> Path:
    p = t.audio_dir() / name
    if not p.is_file():
        t.missing(f"test clip {p} is missing")
    return p


def traditional(text: str) -> str:
    """The Traditional-only characters of `text`, in order."""
    return "".join(c for c in text if c in TRAD_ONLY)


def assert_simplified(text: str, where: str):
    assert sum(t.is_cjk(c) for c in text) >= 5, f"{where}: expected Chinese text, got {text!r}"
    assert traditional(text) == "", \
        f"{where}: Traditional-only characters {traditional(text)!r} in {text!r}"


def assert_traditional(text: str, where: str):
    """The oracle can see Traditional text: what the clip gives when Traditional is asked for."""
    assert len(traditional(text)) >= 3, f"{where}: expected Traditional characters in {text!r}"


def start_server(tmp: Path, *args: str) -> AsrdServer:
    t.require_model("base")
    t.require_model("tiny.en")
    return AsrdServer(t.asrd_bin(), tmp, {"ASRD_MODELS": str(t.models_root())},
                      ["--models", "base,tiny.en", "--beam-size", "1", "--no-vad",
                       "--keep-alive", "-1", *args]).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    clip()
    srv = start_server(tmp_path_factory.mktemp("zh"))
    yield srv
    code = srv.stop()
    assert code == 0, f"server exit code {code}\n{srv.log()[-2000:]}"


def v1(srv: AsrdServer, name: str = ZH, **fields) -> requests.Response:
    with open(clip(name), "rb") as f:
        return requests.post(srv.url + "/v1/audio/transcriptions",
                             data={"response_format": "json", **fields},
                             files={"file": (name, f, "audio/wav")},
                             timeout=300 * t.timeout_scale())


def v1_text(srv: AsrdServer, **fields) -> str:
    r = v1(srv, **fields)
    assert r.status_code == 200, r.text
    return r.json()["text"]


# ---- /v1/audio/transcriptions ----------------------------------------------------------------


@pytest.mark.parametrize("language", ["zh", None], ids=["zh", "detected"])
def test_v1_default_is_simplified(server, language):
    fields = {"model": "base"}
    if language:
        fields["language"] = language
    assert_simplified(v1_text(server, **fields), f"/v1 language={language}")


def test_v1_tag_and_request_win_over_the_setting(server):
    assert_traditional(v1_text(server, model="base", language="zh-TW"), "/v1 zh-TW")
    assert_traditional(v1_text(server, model="base", language="zh", chinese_script="traditional"),
                       "/v1 chinese_script=traditional")
    assert_traditional(v1_text(server, model="base", language="zh", chinese_script="auto"),
                       "/v1 chinese_script=auto (as decoded)")
    assert_simplified(v1_text(server, model="base", language="zh-TW",
                              chinese_script="simplified"), "/v1 zh-TW + simplified")


def test_v1_bad_chinese_script(server):
    r = v1(server, model="base", chinese_script="klingon")
    assert r.status_code == 400, r.text
    assert error_problems(r.status_code, r.content, "chinese_script") == [], r.text
    assert "auto, simplified or traditional" in r.json()["error"]["message"], r.text


def test_setting_auto_keeps_what_the_model_writes(tmp_path):
    clip()
    srv = start_server(tmp_path, "--chinese-script", "auto")
    try:
        assert_traditional(v1_text(srv, model="base", language="zh"), "chinese_script=auto server")
        cfg = requests.get(srv.url + "/v1/config", timeout=30)
        assert cfg.status_code == 200 and "auto" in json.dumps(cfg.json().get("chinese_script")), \
            cfg.text
    finally:
        srv.stop()


# ---- jobs API ----------------------------------------------------------------------------------


def upload(srv: AsrdServer) -> int:
    return jobsutil.upload_ok(srv, clip().read_bytes(), ZH)["id"]


def job_text(srv: AsrdServer, rid: int, **opts) -> str:
    r = requests.post(f"{srv.url}/api/recordings/{rid}/transcribe", json=opts, timeout=60)
    assert r.status_code in (200, 201, 202), r.text
    j = jobsutil.wait_job(srv, r.json()["id"], timeout=300)
    assert j["state"] == "done", j
    tx = jobsutil.transcript(srv, rid)
    assert tx.status_code == 200, tx.text
    return tx.text


def test_jobs_default_is_simplified_and_chinese_script_accepted(server):
    rid = upload(server)
    assert_simplified(job_text(server, rid, model="base", language="zh"), "job language=zh")
    assert_traditional(job_text(server, rid, model="base", language="zh",
                                chinese_script="traditional"), "job chinese_script=traditional")
    r = requests.post(f"{server.url}/api/recordings/{rid}/transcribe",
                      json={"model": "base", "chinese_script": "hanzi"}, timeout=30)
    assert r.status_code == 400 and error_problems(400, r.content, "chinese_script") == [], r.text


# ---- English-only models: one rule ----------------------------------------------------------


def test_english_only_model_other_language_v1(server):
    r = v1(server, model="tiny.en", language="zh")
    assert r.status_code == 400, r.text
    assert error_problems(r.status_code, r.content, "language") == [], r.text
    msg = r.json()["error"]["message"]
    assert "tiny.en" in msg and "'zh'" in msg, msg


def test_english_only_model_other_language_job(server):
    rid = upload(server)
    r = requests.post(f"{server.url}/api/recordings/{rid}/transcribe",
                      json={"model": "tiny.en", "language": "zh"}, timeout=30)
    assert r.status_code == 400, r.text
    assert error_problems(r.status_code, r.content, "language") == [], r.text
    msg = r.json()["error"]["message"]
    assert "tiny.en" in msg and "'zh'" in msg, msg


def cli(*args: str):
    return t.run_asrd(list(args), timeout=300 * t.timeout_scale(),
                      env={"ASRD_MODELS": str(t.models_root())})


def test_english_only_model_other_language_cli():
    t.require_model("tiny.en")
    proc = cli("transcribe", "--model", "tiny.en", "--language", "zh", str(clip()))
    assert proc.returncode == 2, t.describe(proc)
    assert proc.stdout == "", t.describe(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "tiny.en" in lines[0] and "'zh'" in lines[0], proc.stderr
    # English itself, and detection, still transcribe
    ok = cli("transcribe", "--model", "tiny.en", "--language", "en-US",
             str(clip("en_ldc93s1.wav")))
    assert ok.returncode == 0 and ok.stdout.strip(), t.describe(ok)


# ---- CLI ---------------------------------------------------------------------------------------


def test_cli_default_is_simplified_and_option_wins():
    t.require_model("base")
    proc = cli("transcribe", "--model", "base", str(clip()))
    assert proc.returncode == 0, t.describe(proc)
    assert_simplified(proc.stdout, "CLI default")
    proc = cli("transcribe", "--model", "base", "--chinese-script", "auto", str(clip()))
    assert proc.returncode == 0, t.describe(proc)
    assert_traditional(proc.stdout, "CLI --chinese-script auto")


# ---- web UI ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    import web_driver as wd

    wd.require()
    drv = wd.start()
    yield drv
    drv.quit()


@pytest.mark.parametrize("choice", ["zh-Hans", ""], ids=["simplified-menu", "detected"])
def test_ui_default_is_simplified(server, browser, choice):
    """Upload with the language menu on 中文（简体） (or detect) and start at once: the transcript
    beside the audio has no Traditional-only character."""
    import web_driver as wd
    from selenium.webdriver.support.ui import Select
    from test_web_ui import console, css, open_page, text_of, wait_transcript

    drv = browser
    open_page(drv, server)
    menu = Select(css(drv, "#upload-language"))
    labels = [o.text for o in menu.options]
    assert "中文（简体）" in labels and "中文（繁體）" in labels, labels
    menu.select_by_value(choice)
    if not css(drv, "#upload-autostart").is_selected():
        css(drv, "#upload-autostart").click()
    before = text_of(drv, "#upload-list")
    css(drv, "#file-input").send_keys(str(clip()))
    wd.wait_for(lambda: text_of(drv, "#upload-list") != before and
                "uploading" not in (css(drv, "#upload-list li:first-child")
                                    .get_attribute("class") or ""),
                what="the upload to finish", on_fail=lambda: console(drv))
    # the new recording opens; its transcript arrives when the job is done
    text = wait_transcript(drv, timeout=300 * t.timeout_scale())
    assert_simplified(text.replace(" ", ""), f"UI language={choice or 'detected'}")
