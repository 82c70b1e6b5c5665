"""Transcript corrections, rename and batch export against a real `asrd serve --models tiny.en`
(issue 22, "The UI a team works in"), on SQLite and on a real PostgreSQL (scripts/pg-temp.sh):

- PATCH /api/recordings/ID/edits saves a segment's corrected text beside the original: the job's
  stored result is untouched (?original=1 still renders it), every export (txt, srt, vtt, json)
  uses the edit, GET …/edits lists it, and clearing it (DELETE, or PATCH with null or the original
  text) gives the original back; bad input answers OpenAI's error shape naming the field;
- PATCH /api/recordings/ID renames a recording;
- POST /api/recordings/export answers a zip of the chosen format, one member per recording with a
  transcript (edits applied), the others listed in X-Asrd-Skipped; checked by unzipping it.
"""

from __future__ import annotations

import io
import zipfile

import pytest

import asrdtest as t
import jobsutil as ju
from test_jobs_nodes import _createdb

requests = t.import_or_missing("requests")

JFK = "en_jfk.wav"
EDIT = "And so my fellow Americans, ask what you can do (edited zebracorn)"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def srv(request, tmp_path_factory):
    t.require_model("tiny.en")
    tmp = tmp_path_factory.mktemp("edits-" + request.param)
    args = []
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        _createdb(url.rsplit("/", 1)[0] + "/asrd", "asrd_edits")
        args = ["--database", url.rsplit("/", 1)[0] + "/asrd_edits"]
    s = ju.node(tmp, "node", args)
    s.start()
    yield s
    s.stop()


def err(r, status, param):
    assert r.status_code == status, r.text
    e = r.json()["error"]
    assert e["param"] == param, e
    assert e["message"] and e["type"], e
    return e


def transcript(srv, rid, fmt="txt", **q):
    r = requests.get(f"{srv.url}/api/recordings/{rid}/transcript",
                     params={"format": fmt, **q}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json() if fmt == "json" else r.text


@pytest.fixture(scope="module")
def done_rec(srv):
    rec = ju.upload_ok(srv, (t.audio_dir() / JFK).read_bytes(), JFK, name="jfk speech.wav")
    r = ju.transcribe(srv, rec["id"])
    assert r.status_code == 201, r.text
    j = ju.wait_job(srv, r.json()["id"])
    assert j["state"] == "done", j
    return rec["id"], j["id"]


def test_edit_saved_beside_the_original(srv, done_rec):
    rid, jid = done_rec
    orig = transcript(srv, rid, "json")
    segs = orig["segments"]
    assert segs and "edited" not in segs[0]
    url = f"{srv.url}/api/recordings/{rid}/edits"
    r = requests.patch(url, json={"segment": 0, "text": EDIT, "job_id": jid}, timeout=30)
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["edited"] and e["segment"] == 0 and e["job_id"] == jid
    assert e["text"].strip() == EDIT and e["original_text"] == segs[0]["text"]
    # every export uses the edit; the original is still there, untouched
    assert EDIT in transcript(srv, rid, "txt")
    assert segs[0]["text"].strip() not in transcript(srv, rid, "txt")
    for fmt in ("srt", "vtt"):
        assert EDIT in transcript(srv, rid, fmt)
        assert EDIT in transcript(srv, rid, fmt, max_line_width=200)  # cut per word: kept whole
    j = transcript(srv, rid, "json")
    assert EDIT in j["text"] and j["segments"][0]["edited"] is True
    assert j["segments"][0]["original_text"] == segs[0]["text"]
    assert transcript(srv, rid, "json", original="1") == orig
    # search finds the corrected words
    found = requests.get(f"{srv.url}/api/recordings", params={"q": "zebracorn"}, timeout=30)
    assert [d["id"] for d in found.json()["data"]] == [rid], found.text
    listed = requests.get(url, timeout=30).json()
    assert listed["job_id"] == jid and [d["segment"] for d in listed["data"]] == [0]
    # clearing gives the original back: DELETE, PATCH null, PATCH the original text
    r = requests.delete(url, params={"segment": 0}, timeout=30)
    assert r.status_code == 200 and r.json()["edited"] is False, r.text
    assert transcript(srv, rid, "json") == orig
    found = requests.get(f"{srv.url}/api/recordings", params={"q": "zebracorn"}, timeout=30)
    assert found.json()["data"] == [], found.text
    requests.patch(url, json={"segment": 0, "text": EDIT}, timeout=30).raise_for_status()
    r = requests.patch(url, json={"segment": 0, "text": None}, timeout=30)
    assert r.json()["edited"] is False and transcript(srv, rid, "json") == orig
    r = requests.patch(url, json={"segment": 0, "text": "  " + segs[0]["text"].strip()}, timeout=30)
    assert r.json()["edited"] is False and requests.get(url, timeout=30).json()["data"] == []
    # leave the edit in place for the export test
    requests.patch(url, json={"segment": 0, "text": EDIT}, timeout=30).raise_for_status()


def test_edit_bad_input(srv, done_rec):
    rid, jid = done_rec
    url = f"{srv.url}/api/recordings/{rid}/edits"
    n = len(transcript(srv, rid, "json")["segments"])
    err(requests.patch(url, json={"segment": n, "text": "x"}, timeout=30), 400, "segment")
    err(requests.patch(url, json={"segment": -1, "text": "x"}, timeout=30), 400, "segment")
    err(requests.patch(url, json={"segment": "0", "text": "x"}, timeout=30), 400, "segment")
    err(requests.patch(url, json={"segment": 0, "text": 5}, timeout=30), 400, "text")
    err(requests.patch(url, json={"segment": 0, "text": "bell\x07"}, timeout=30), 400, "text")
    err(requests.patch(url, json={"segment": 0, "text": "x" * 9000}, timeout=30), 400, "text")
    err(requests.patch(url, json={"segment": 0, "text": "x", "job_id": jid + 1000}, timeout=30),
        409, "job_id")
    err(requests.patch(url, data=b"not json", timeout=30), 400, None)
    err(requests.delete(url, timeout=30), 400, "segment")
    err(requests.patch(f"{srv.url}/api/recordings/999999/edits", json={"segment": 0, "text": "x"},
                     timeout=30), 404, "id")
    other = ju.upload_ok(srv, (t.audio_dir() / JFK).read_bytes(), JFK)  # never transcribed
    e = err(requests.get(f"{srv.url}/api/recordings/{other['id']}/edits", timeout=30), 404, "id")
    assert e["code"] == "transcript_not_ready"
    requests.delete(f"{srv.url}/api/recordings/{other['id']}", timeout=30).raise_for_status()


def test_rename(srv, done_rec):
    rid, _ = done_rec
    url = f"{srv.url}/api/recordings/{rid}"
    r = requests.patch(url, json={"name": "周会 renamed.wav"}, timeout=30)
    assert r.status_code == 200 and r.json()["name"] == "周会 renamed.wav", r.text
    assert requests.get(url, timeout=30).json()["name"] == "周会 renamed.wav"
    err(requests.patch(url, json={"name": ""}, timeout=30), 400, "name")
    err(requests.patch(url, json={"name": 3}, timeout=30), 400, "name")
    err(requests.patch(url, json={"status": "done"}, timeout=30), 400, "status")
    err(requests.patch(f"{srv.url}/api/recordings/999999", json={"name": "x"}, timeout=30),
        404, "id")
    requests.patch(url, json={"name": "jfk speech.wav"}, timeout=30).raise_for_status()


def test_export_zip(srv, done_rec):
    rid, _ = done_rec
    pending = ju.upload_ok(srv, (t.audio_dir() / JFK).read_bytes(), JFK, name="pending.wav")
    url = f"{srv.url}/api/recordings/export"
    for fmt in ("txt", "srt", "vtt", "json"):
        r = requests.post(url, json={"ids": [rid, pending["id"]], "format": fmt}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/zip"
        assert f"transcripts-{fmt}.zip" in r.headers["Content-Disposition"]
        assert r.headers["X-Asrd-Skipped"] == str(pending["id"])
        z = zipfile.ZipFile(io.BytesIO(r.content))
        assert z.testzip() is None
        assert z.namelist() == [f"jfk speech.{fmt}"]
        body = z.read(f"jfk speech.{fmt}").decode()
        assert EDIT in body
        assert body == transcript(srv, rid, fmt) if fmt != "json" else True
    err(requests.post(url, json={"ids": [rid], "format": "docx"}, timeout=30), 400, "format")
    err(requests.post(url, json={"ids": []}, timeout=30), 400, "ids")
    err(requests.post(url, json={"ids": ["1"]}, timeout=30), 400, "ids")
    err(requests.post(url, json={"ids": [rid, 999999]}, timeout=30), 404, "ids")
    e = err(requests.post(url, json={"ids": [pending["id"]]}, timeout=30), 404, "ids")
    assert e["code"] == "transcript_not_ready"
    requests.delete(f"{srv.url}/api/recordings/{pending['id']}", timeout=30).raise_for_status()


def test_routes_need_the_api_key(tmp_path):
    """With api_keys set, rename, the edits routes and export answer 401 without a key, and work
    with it."""
    from server_fixture import AsrdServer
    t.require_model("tiny.en")
    srv = AsrdServer(t.asrd_bin(), tmp_path / "keyed", {"ASRD_MODELS": str(t.models_root())},
                     ["--models", "tiny.en", "--api-keys", "sk-edit-test", "--no-preload"])
    srv.start()
    try:
        key = {"Authorization": "Bearer sk-edit-test"}
        r = requests.post(srv.url + "/api/recordings", headers=key, timeout=60,
                          files={"file": (JFK, (t.audio_dir() / JFK).read_bytes(), "audio/wav")})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        calls = [("PATCH", f"/api/recordings/{rid}", {"name": "x"}),
                 ("GET", f"/api/recordings/{rid}/edits", None),
                 ("PATCH", f"/api/recordings/{rid}/edits", {"segment": 0, "text": "x"}),
                 ("DELETE", f"/api/recordings/{rid}/edits?segment=0", None),
                 ("POST", "/api/recordings/export", {"ids": [rid]})]
        for method, path, body in calls:
            r = requests.request(method, srv.url + path, json=body, timeout=30)
            assert r.status_code == 401 and r.json()["error"]["message"], (method, path, r.text)
            r = requests.request(method, srv.url + path, json=body, headers=key, timeout=30)
            assert r.status_code in (200, 404), (method, path, r.text)  # 404: not transcribed
        assert requests.get(f"{srv.url}/api/recordings/{rid}", headers=key,
                            timeout=30).json()["name"] == "x"
    finally:
        srv.stop()
