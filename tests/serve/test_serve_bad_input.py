"""Every bad request the issue lists: a clear JSON error (422 naming the field, 413, 415, 400,
404), never a 500 or a traceback, and nothing left in the data folder."""

from __future__ import annotations

import json

import pytest
from serve_helpers import HI, assert_clean_refusal, client, png, portrait, serve, submit, video, wav

from facecast.serve.store import new_id

FIXTURES = (client, portrait, video)  # imported fixtures: pytest finds them by name


@pytest.mark.parametrize("spec,field", [
    ({**HI, "colour": "red"}, "colour"),                      # unknown field
    ({**HI, "size": "big"}, "size"),                          # wrong type
    ({**HI, "fps": "25"}, "fps"),                             # a string is not a number (strict)
    ({**HI, "words": "yes"}, "words"),
    ({**HI, "size": 513}, "size"),                            # SayOptions' range: even
    ({**HI, "size": 32}, "size"),                             # below 64
    ({**HI, "fps": 0}, "fps"),
    ({**HI, "crf": 99}, "crf"),
    ({**HI, "preset": "turbo"}, "preset"),
    ({**HI, "expression": "angry"}, "expression"),
    ({**HI, "head_motion": -1}, "head_motion"),
    ({**HI, "face_index": 100}, "face_index"),
    ({**HI, "text": ""}, "text"),                             # facecast.text's own check
    ({**HI, "text": "x" * 6000}, "text"),
    ({"kind": "say", "size": 128}, "text"),                   # neither text nor audio
    ({**HI, "transcript": "Hi."}, "transcript"),              # transcript without audio
    ({"kind": "sing", "text": "Hi."}, "kind"),
    ({"text": "Hi."}, "kind"),
])
def test_spec_errors_name_the_field(client, portrait, spec, field):
    r = submit(client, spec, files={"face": ("p.jpg", portrait)})
    body = assert_clean_refusal(r, 422, client.data_dir, field=field)
    assert body["detail"][0]["loc"][:2] == ["body", "spec"]


@pytest.mark.parametrize("spec,field", [
    ({"kind": "twin_train", "minutes": 0}, "minutes"),
    ({"kind": "twin_train", "crop": 65}, "crop"),
    ({"kind": "twin_train", "steps": 0}, "steps"),
    ({"kind": "twin_train", "mouth_folds": 21}, "mouth_folds"),
    ({"kind": "twin_train", "text": "Hi."}, "text"),          # no text for twins
    ({"kind": "dub", "text": "Hi.", "mouth": "lips"}, "mouth"),
])
def test_video_kind_spec_errors(client, video, spec, field):
    r = submit(client, spec, files={"face": ("v.mp4", video)})
    assert_clean_refusal(r, 422, client.data_dir, field=field)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\"say\"", ""])
def test_spec_not_a_json_object(client, portrait, text):
    r = submit(client, text, files={"face": ("p.jpg", portrait)})
    assert_clean_refusal(r, 422, client.data_dir)


def test_missing_spec_face_and_face_id(client, portrait):
    r = client.post("/v1/jobs", files={"face": ("p.jpg", portrait)})
    assert_clean_refusal(r, 422, client.data_dir, field="spec")
    r = submit(client, HI)  # no face at all
    assert_clean_refusal(r, 422, client.data_dir, field="face")
    unknown = new_id("f")
    r = submit(client, HI, data={"face_id": unknown})
    body = assert_clean_refusal(r, 422, client.data_dir, field="face_id")
    assert unknown in body["error"]
    for pathish in ("../../etc/passwd", "f_../../../jobs", "/etc/hosts", "f_" + "0" * 19 + "/"):
        r = submit(client, HI, data={"face_id": pathish})
        assert_clean_refusal(r, 422, client.data_dir, field="face_id")
    r = submit(client, HI, files={"face": ("p.jpg", portrait)}, data={"face_id": unknown})  # both
    assert_clean_refusal(r, 422, client.data_dir, field="face")


def test_a_face_without_a_face(client):
    r = submit(client, HI, files={"face": ("me.png", png())})
    body = assert_clean_refusal(r, 422, client.data_dir, field="face")
    assert "face" in body["error"].lower()
    r = client.post("/v1/faces", files={"face": ("me.png", png())})
    assert_clean_refusal(r, 422, client.data_dir, field="face")


@pytest.mark.parametrize("name,content,needle", [
    ("face.jpg", b"just some text, not a picture\n" * 20, "text"),
    ("face.png", b"<!DOCTYPE html><html><body>404</body></html>", "web page"),
    ("face.jpg", b"\x00\x01\x02garbage" * 100, "not an image"),
    ("face.twin", len(b'{"__metadata__":{}}').to_bytes(8, "little") + b'{"__metadata__":{}}', "not a facecast twin"),
    ("face.jpg", b"", "empty"),
])
def test_face_type_from_content_not_name(client, name, content, needle):
    for url, extra in (("/v1/jobs", {"spec": json.dumps(HI)}), ("/v1/faces", {})):
        r = client.post(url, data=extra, files={"face": (name, content)})
        body = assert_clean_refusal(r, 422, client.data_dir, field="face")
        assert needle in body["error"], body["error"]
        assert str(client.data_dir) not in body["error"]  # the server's paths never show


def test_wrong_kind_of_input(client, portrait, video):
    r = submit(client, HI, files={"face": ("talk.jpg", video)})  # a video named .jpg, for say
    assert "needs a portrait image or a .twin; this is a video" in assert_clean_refusal(
        r, 422, client.data_dir, field="face")["error"]
    r = submit(client, {"kind": "dub", "text": "Hi."}, files={"face": ("clip.mp4", portrait)})  # a photo for dub
    assert_clean_refusal(r, 422, client.data_dir, field="face")
    r = submit(client, HI, files={"face": ("p.jpg", wav())})  # audio as a face
    assert_clean_refusal(r, 422, client.data_dir, field="face")
    spec = {"kind": "say", "size": 128}
    r = submit(client, spec, files={"face": ("p.jpg", portrait), "audio": ("speech.wav", png())})  # a PNG named .wav
    body = assert_clean_refusal(r, 422, client.data_dir, field="audio")
    assert "image" in body["error"]
    r = submit(client, {"kind": "twin_train"}, files={"face": ("v.mp4", video), "audio": ("a.wav", wav())})
    assert_clean_refusal(r, 422, client.data_dir, field="audio")
    r = submit(client, HI, files={"face": ("p.jpg", portrait), "audio": ("a.wav", wav())})  # text and audio
    assert_clean_refusal(r, 422, client.data_dir, field="text")
    r = client.post("/v1/faces", files={"face": ("voice.wav", wav())})
    assert "is audio, not a face" in assert_clean_refusal(r, 422, client.data_dir, field="face")["error"]


def test_a_portrait_named_like_audio_is_still_a_portrait(client, portrait):
    r = client.post("/v1/faces", files={"face": ("voice.wav", portrait)})
    assert r.status_code == 201 and r.json()["kind"] == "image"


def test_size_caps(tmp_path, portrait):
    with serve(tmp_path / "data", max_upload_mb=0.04) as c:  # 40 KiB: the 52 KB portrait is over it
        r = submit(c, HI, files={"face": ("p.jpg", portrait)})
        body = assert_clean_refusal(r, 413, c.data_dir)
        assert "face" in body["error"] and "MiB" in body["error"]
        r = c.post("/v1/faces", files={"face": ("p.jpg", portrait)})
        assert_clean_refusal(r, 413, c.data_dir)
        r = submit(c, {**HI, "text": "word " * 20000}, files={"face": ("p.jpg", b"x")})  # spec over 64 KiB
        assert_clean_refusal(r, 413, c.data_dir)
        big = b"--b\r\n" + b"x" * (4 * 2**20)  # Content-Length over every cap: refused before reading
        r = c.post("/v1/jobs", content=big, headers={"content-type": "multipart/form-data; boundary=b"})
        assert_clean_refusal(r, 413, c.data_dir)
        assert 'reason="too_large"' in c.get("/metrics").text


@pytest.mark.parametrize("ctype,body,status", [
    ("application/json", b'{"kind": "say"}', 415),
    ("multipart/form-data", b"--x\r\n", 400),                                     # no boundary
    ("multipart/form-data; boundary=x", b"this is not multipart at all", 400),
    ("multipart/form-data; boundary=x",                                          # cut before the end
     b'--x\r\nContent-Disposition: form-data; name="spec"\r\n\r\n{"kind": "say"', 400),
    ("multipart/form-data; boundary=x",                                          # a part without a name
     b'--x\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--x--\r\n', 400),
    ("multipart/form-data; boundary=x",
     b'--x\r\nContent-Type: text/plain\r\n\r\nabc\r\n--x--\r\n', 400),
])
def test_malformed_bodies(client, ctype, body, status):
    r = client.post("/v1/jobs", content=body, headers={"content-type": ctype})
    assert_clean_refusal(r, status, client.data_dir)


def test_unknown_and_repeated_parts(client, portrait):
    r = client.post("/v1/jobs", data={"spec": json.dumps(HI), "colour": "red"}, files={"face": ("p.jpg", portrait)})
    assert_clean_refusal(r, 422, client.data_dir, field="colour")
    r = client.post("/v1/jobs", files={"spec": ("spec.json", json.dumps(HI).encode()), "face": ("p.jpg", portrait)})
    assert_clean_refusal(r, 422, client.data_dir, field="spec")
    r = client.post("/v1/jobs", data={"spec": json.dumps(HI)},
                    files=[("face", ("a.jpg", portrait)), ("face", ("b.jpg", portrait))])
    assert_clean_refusal(r, 422, client.data_dir, field="face")


@pytest.mark.parametrize("method,url", [
    ("GET", "/v1/jobs/..%2F..%2Fetc%2Fpasswd"), ("GET", "/v1/jobs/j_..%2F..%2Ffacecast.sqlite3/result"),
    ("DELETE", "/v1/jobs/%2e%2e"), ("GET", "/v1/jobs/j_0000000000000000000z/events"),
    ("GET", "/v1/faces/..%2Ffaces"), ("DELETE", "/v1/faces/f_..%2F..%2Fjobs"), ("GET", "/v1/jobs/" + "a" * 5000),
    ("GET", "/no/such/route"),
])
def test_path_like_ids_are_just_unknown(client, method, url):
    r = client.request(method, url)
    assert_clean_refusal(r, 404, client.data_dir)


def test_method_not_allowed_is_json(client):
    r = client.put("/v1/jobs")
    assert r.status_code == 405 and "error" in r.json()
