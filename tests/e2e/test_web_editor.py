"""The UI a team works in (issue 22), in a real headless Chromium against a real
`asrd serve --models tiny.en`: correcting a segment in place (saved beside the original; Ctrl+Z
and Ctrl+Shift+Z in the editor; Enter saves, Escape cancels) and downloading the corrected text,
renaming, copying the transcript, a link per recording (#/recordings/ID opens it), batch select →
export (a zip, unzipped and checked) and delete, "transcribe after upload" on by default, the
upload language shown, and all of it with the keyboard only.

Screenshots: tests/artifacts/web_ui_editor.png (a segment open in the editor) and
tests/artifacts/web_ui_batch.png (two recordings selected, the batch actions shown).
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest

import asrdtest as t
import web_driver as wd
from server_fixture import AsrdServer
from test_web_ui import (JFK, console, css, csss, open_page, press, shot, tab_to, text_of,
                         upload_jfk, visible, wait_transcript, no_missing_keys)

requests = t.import_or_missing("requests")

FIX = "Ask what you can do for your country, corrected"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    t.require_model("tiny.en")
    srv = AsrdServer(t.asrd_bin(), tmp_path_factory.mktemp("webedit"),
                     {"ASRD_MODELS": str(t.models_root())},
                     ["--models", "tiny.en", "--beam-size", "1", "--no-vad"])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("editor-downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    wd.require()
    drv = wd.start(download_dir=downloads)
    yield drv
    drv.quit()


def wait_download(d: Path, name: str, after: float) -> Path:
    """The file `name` in the download directory, once complete and newer than `after`."""
    def ready():
        p = d / name
        return p if p.is_file() and p.stat().st_mtime >= after - 1 and p.stat().st_size > 0 \
            and not list(d.glob("*.crdownload")) else None
    return wd.wait_for(ready, what=f"the download {name}")


def transcribed(drv, srv) -> str:
    """Uploads JFK with "transcribe after upload" left on (its default), waits for the transcript;
    returns the recording id."""
    assert css(drv, "#upload-autostart").is_selected(), "transcribe after upload is on by default"
    rid = upload_jfk(drv, autostart=True)
    wait_transcript(drv)
    return rid


def seg_texts(drv):
    return [e.text for e in csss(drv, "#segments .seg .x")]


def test_edit_undo_save_and_download(server, browser, downloads):
    from selenium.webdriver.common.keys import Keys
    drv = browser
    open_page(drv, server)
    rid = transcribed(drv, server)
    original = seg_texts(drv)[0]
    assert "Uploaded without a language" in text_of(drv, "#detail-uploaded-lang")
    css(drv, '#segments .seg-edit-btn[data-i="0"]').click()
    ta = css(drv, "#segments .seg-editor")
    assert drv.switch_to.active_element == ta and ta.get_attribute("value") == original
    ta.send_keys(Keys.CONTROL, "a")
    ta.send_keys(FIX)
    assert ta.get_attribute("value") == FIX
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", ta)
    shot(drv, "editor")
    ta.send_keys(Keys.CONTROL, "z")  # undo: back to the text the editor opened with
    wd.wait_for(lambda: ta.get_attribute("value") == original, what="Ctrl+Z to undo the typing")
    ta.send_keys(Keys.CONTROL, Keys.SHIFT, "z")  # redo
    wd.wait_for(lambda: ta.get_attribute("value") == FIX, what="Ctrl+Shift+Z to redo")
    ta.send_keys(Keys.ENTER)
    wd.wait_for(lambda: seg_texts(drv) and seg_texts(drv)[0] == FIX, what="the saved correction",
                on_fail=lambda: text_of(drv, "#edit-error") + console(drv))
    assert "edited" in css(drv, '#segments li[data-i="0"]').get_attribute("class")
    # the focus went back to the segment's Edit button
    assert drv.execute_script("return document.activeElement.dataset.i") == "0"
    # the original is kept beside it; the download has the correction
    r = requests.get(f"{server.url}/api/recordings/{rid}/transcript",
                     params={"format": "json", "original": "1"}, timeout=30)
    assert r.json()["segments"][0]["text"].strip() == original
    t0 = time.time()
    css(drv, '.dl[data-fmt="txt"]').click()
    got = wait_download(downloads, JFK.replace(".wav", ".txt"), t0).read_text()
    assert FIX in got and original not in got, got
    # Escape leaves the editor without saving
    css(drv, '#segments .seg-edit-btn[data-i="0"]').click()
    ta = css(drv, "#segments .seg-editor")
    ta.send_keys(Keys.CONTROL, "a")
    ta.send_keys("not saved")
    ta.send_keys(Keys.ESCAPE)
    wd.wait_for(lambda: not csss(drv, "#segments .seg-editor"), what="Escape to close the editor")
    assert seg_texts(drv)[0] == FIX
    # Restore original clears the correction
    css(drv, '#segments .seg-edit-btn[data-i="0"]').click()
    css(drv, "#segments .act-restore").click()
    wd.wait_for(lambda: seg_texts(drv) and seg_texts(drv)[0] == original,
                what="the original text back")
    # copy the whole transcript
    css(drv, "#copy-transcript").click()
    wd.wait_for(lambda: "Transcript copied" in text_of(drv, "#toast"), what="the copy toast")
    copied = drv.execute_script("return document.querySelector('#segments').innerText")
    assert original in copied
    no_missing_keys(drv)
    assert not wd.console_errors(drv), console(drv)


def test_rename_and_deep_link(server, browser):
    drv = browser
    open_page(drv, server)
    rid = upload_jfk(drv)
    css(drv, "#detail-rename").click()
    inp = css(drv, "#rename-input")
    inp.clear()
    inp.send_keys("Inaugural address\n")
    wd.wait_for(lambda: text_of(drv, "#detail-title") == "Inaugural address",
                what="the new name", on_fail=lambda: text_of(drv, "#rename-error"))
    assert requests.get(f"{server.url}/api/recordings/{rid}", timeout=30).json()["name"] == \
        "Inaugural address"
    wd.wait_for(lambda: "Inaugural address" in text_of(drv, f'#rec-table tr[data-id="{rid}"]'),
                what="the list to show the new name")
    assert css(drv, "#detail-link").get_attribute("href").endswith(f"#/recordings/{rid}")
    assert drv.current_url.endswith(f"#/recordings/{rid}")
    # a fresh page opened at the link shows that recording
    open_page(drv, server, hash_=f"#/recordings/{rid}")
    wd.wait_for(lambda: visible(drv, "#rec-detail") and
                text_of(drv, "#detail-title") == "Inaugural address", what="the deep link")
    css(drv, "#detail-close").click()
    assert drv.current_url.endswith("#/recordings")


def test_batch_export_and_delete(server, browser, downloads):
    drv = browser
    open_page(drv, server)
    a = transcribed(drv, server)
    b = upload_jfk(drv)  # never transcribed: left out of the zip
    requests.patch(f"{server.url}/api/recordings/{a}/edits", json={"segment": 0, "text": FIX},
                 timeout=30).raise_for_status()
    css(drv, "#detail-close").click()
    for rid in (a, b):
        css(drv, f'#rec-table tr[data-id="{rid}"] input.sel-one').click()
    wd.wait_for(lambda: visible(drv, "#batch-bar"), what="the batch actions")
    assert text_of(drv, "#batch-count") == "2 selected"
    shot(drv, "batch")
    from selenium.webdriver.support.ui import Select
    Select(css(drv, "#batch-format")).select_by_value("srt")
    t0 = time.time()
    css(drv, "#batch-export").click()
    z = zipfile.ZipFile(io.BytesIO(wait_download(downloads, "transcripts-srt.zip", t0).read_bytes()))
    assert z.testzip() is None
    names = z.namelist()
    assert len(names) == 1 and names[0].endswith(".srt"), names
    assert FIX in z.read(names[0]).decode()
    wd.wait_for(lambda: "not transcribed yet" in text_of(drv, "#toast"), what="the skipped note")
    # batch transcribe: b gets its first job (a, already done, a new one)
    css(drv, "#batch-transcribe").click()
    wd.wait_for(lambda: requests.get(f"{server.url}/api/recordings/{b}", timeout=30)
                .json()["latest_job"] is not None, what="b's job from the batch Transcribe")
    wd.wait_for(lambda: "Transcription started for 2 recordings" in text_of(drv, "#toast"),
                what="the batch transcribe toast")
    # batch delete (confirmed)
    drv.execute_script("window.confirm = () => true")
    css(drv, "#batch-delete").click()
    wd.wait_for(lambda: not csss(drv, f'#rec-table tr[data-id="{a}"]') and
                not csss(drv, f'#rec-table tr[data-id="{b}"]'), what="both rows gone")
    assert not visible(drv, "#batch-bar")
    for rid in (a, b):
        assert requests.get(f"{server.url}/api/recordings/{rid}", timeout=30).status_code == 404


def test_keyboard_only_editor_and_batch(server, browser, downloads):
    """The editor, rename and the batch actions with Tab, Enter, Space and Escape only."""
    from selenium.webdriver.common.keys import Keys
    drv = browser
    open_page(drv, server)
    rid = transcribed(drv, server)
    drv.execute_script("document.activeElement && document.activeElement.blur()")
    tab_to(drv, "e.matches('#segments .seg-edit-btn[data-i=\"0\"]')", "a segment's Edit")
    press(drv, Keys.ENTER)
    wd.wait_for(lambda: drv.execute_script(
        "return document.activeElement.classList.contains('seg-editor')"), what="the editor")
    press(drv, Keys.ESCAPE)  # cancel: focus back on Edit
    wd.wait_for(lambda: drv.execute_script(
        "return document.activeElement.classList.contains('seg-edit-btn')"), what="Edit again")
    press(drv, Keys.ENTER)
    ActionChains = __import__("selenium.webdriver.common.action_chains",
                              fromlist=["ActionChains"]).ActionChains
    ActionChains(drv).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).perform()
    press(drv, "By keyboard")
    press(drv, Keys.ENTER)
    wd.wait_for(lambda: seg_texts(drv) and seg_texts(drv)[0] == "By keyboard",
                what="the keyboard correction")
    # rename by keyboard
    tab_to(drv, "e.id === 'detail-rename'", "Rename", back=True)
    press(drv, Keys.ENTER)
    ActionChains(drv).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).perform()
    press(drv, "Keyboard name")
    press(drv, Keys.ENTER)
    wd.wait_for(lambda: text_of(drv, "#detail-title") == "Keyboard name", what="keyboard rename")
    # check the row with Space, then export with Enter
    tab_to(drv, f"e.matches('#rec-table tr[data-id=\"{rid}\"] input.sel-one')", "the row's box",
           back=True)
    press(drv, Keys.SPACE)
    wd.wait_for(lambda: visible(drv, "#batch-bar"), what="the batch actions")
    tab_to(drv, "e.id === 'batch-export'", "Export", back=True)
    t0 = time.time()
    press(drv, Keys.ENTER)
    z = zipfile.ZipFile(io.BytesIO(wait_download(downloads, "transcripts-txt.zip", t0).read_bytes()))
    assert z.namelist() == ["Keyboard name.txt"]
    assert "By keyboard" in z.read("Keyboard name.txt").decode()
    tab_to(drv, "e.id === 'batch-clear'", "Clear selection")
    press(drv, Keys.ENTER)
    wd.wait_for(lambda: not visible(drv, "#batch-bar"), what="the selection cleared")


def test_language_aliases_and_plain_chinese(server, browser):
    """The language a recording was uploaded with is shown as such (and preselected for a re-run);
    an alias is shown with its model, not as a model of its own; the Chinese catalog says what
    the engine does in plain words."""
    from selenium.webdriver.support.ui import Select
    drv = browser
    open_page(drv, server)
    Select(css(drv, "#upload-language")).select_by_value("en")
    upload_jfk(drv)
    wd.wait_for(lambda: text_of(drv, "#detail-uploaded-lang") == "Uploaded as English (en)",
                what="the upload language", on_fail=lambda: text_of(drv, "#detail-uploaded-lang"))
    assert css(drv, "#detail-language").get_attribute("value") == "en"
    models = requests.get(f"{server.url}/v1/models", timeout=30).json()["data"]
    aliases = [m for m in models if m.get("root")]
    assert aliases, "the server lists no alias: nothing to check"
    wd.wait_for(lambda: len(csss(drv, "#detail-model option")) > 1, what="the model menu")
    opts = {o.get_attribute("value"): o.text for o in csss(drv, "#detail-model option")}
    for a in aliases:
        assert a["id"] not in opts, opts
        assert a["id"] in opts[a["root"]], opts
    zh = (t.source_dir() / "src" / "web" / "i18n" / "zh-CN.json").read_text(encoding="utf-8")
    assert "槽位" not in zh and "驱逐" not in zh
