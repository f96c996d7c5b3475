"""REST API through TestClient: every route, every documented error, and that errors never
break the server (each error case is followed by a good request)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from web_helpers import assert_error, decoded_frames

import emoar.web
from emoar import align
from emoar.web.engine import Engine
from emoar.web.schemas import AnalyzeOut, ModelsOut, VideoOut

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _assert_still_serving(c: TestClient, image: bytes) -> None:
    assert c.get("/healthz").json() == {"status": "ok"}
    r = c.post("/v1/analyze", files={"file": ("ok.jpg", image, "image/jpeg")})
    assert r.status_code == 200 and len(r.json()["faces"]) == 1


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_models_lists_the_served_models_with_preprocessing(client: TestClient, engine: Engine) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200
    body = ModelsOut.model_validate(r.json()).model_dump()
    assert body["default"] == engine.default_model and body["models"][0]["default"] is True
    m = body["models"][0]
    assert m["labels"] and m["input_size"] == [48, 48] and m["std"] > 0
    assert len(m["ood_quantiles"]) in (0, 101) and 0 < m["ood_threshold"] <= 1
    assert m["ood_output"] == "ood"  # the shipped models score the face / non-face head
    assert isinstance(m["metrics"], dict)
    assert body["alignment"]["size"] == 48 and len(body["alignment"]["template_48"]) == 5
    onnx = client.get(m["onnx_url"])
    assert onnx.status_code == 200 and onnx.content == engine.model(m["name"]).path.read_bytes()


def test_models_serves_the_alignment_constants_of_emoar_align(client: TestClient) -> None:
    """align.js takes every constant from here: they must be emoar.align's, not copies."""
    a = client.get("/v1/models").json()["alignment"]
    assert a["size"] == align.FER_SIZE
    assert a["template_48"] == align.FER_TEMPLATE_48.tolist()
    assert a["box_48"] == {k: list(v) for k, v in align.FER_BOX_48.items()}
    assert a["fit_weights"] == align._FIT_WEIGHTS.tolist()
    assert a["max_fit_residual"] == align.MAX_FIT_RESIDUAL
    assert a["max_scale_ratio"] == align.MAX_SCALE_RATIO
    assert a["max_supersample"] == align.MAX_SUPERSAMPLE
    js = (Path(emoar.web.__file__).parent / "static" / "js" / "align.js").read_text()
    for key in set(a) - {"landmarks"}:
        assert f"alignment.{key}" in js, f"align.js does not use the served alignment.{key}"


def test_analyze_real_face_returns_the_analyze_json(client: TestClient, portrait_jpg: bytes) -> None:
    r = client.post("/v1/analyze", files={"file": ("portrait.jpg", portrait_jpg, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"image", "width", "height", "faces"}  # exactly the analyze JSON
    AnalyzeOut.model_validate(body)
    assert (body["image"], body["width"], body["height"]) == ("portrait.jpg", 681, 445)
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    assert set(face) == {"box_xyxy", "score", "expression", "probs", "ood_score", "uncertain", "track_id"}
    x1, y1, x2, y2 = face["box_xyxy"]
    assert 0 <= x1 < x2 <= 681 and 0 <= y1 < y2 <= 445 and (x2 - x1) > 100
    assert tuple(face["probs"]) == LABELS and abs(sum(face["probs"].values()) - 1) < 2e-3
    assert face["expression"] == max(face["probs"], key=face["probs"].get)
    assert 0 <= face["ood_score"] <= 1 and face["track_id"] is None


def test_analyze_matches_the_library(client: TestClient, engine: Engine, portrait_jpg: bytes) -> None:
    from emoar.io import decode_image

    expected, _ = engine.analyze(decode_image(portrait_jpg), image="portrait.jpg")
    r = client.post("/v1/analyze", files={"file": ("portrait.jpg", portrait_jpg, "image/jpeg")})
    assert r.json() == expected.to_dict()


def test_analyze_annotate_adds_a_png(client: TestClient, portrait_jpg: bytes) -> None:
    r = client.post("/v1/analyze?annotate=true", files={"file": ("portrait.jpg", portrait_jpg, "image/jpeg")})
    assert r.status_code == 200
    body = r.json()
    png = base64.b64decode(body.pop("annotated_png_base64"))
    assert set(body) == {"image", "width", "height", "faces"}
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (445, 681, 3)
    original = cv2.imdecode(np.frombuffer(portrait_jpg, np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(img.astype(int) - original.astype(int)).max() > 100  # overlays were drawn


def test_analyze_image_without_faces(client: TestClient) -> None:
    ok, buf = cv2.imencode(".png", np.full((120, 160, 3), 200, np.uint8))
    r = client.post("/v1/analyze", files={"file": ("blank.png", buf.tobytes(), "image/png")})
    assert r.status_code == 200 and r.json()["faces"] == [] and r.json()["width"] == 160


def test_analyze_picks_a_model_and_rejects_unknown_ones(
    client: TestClient, engine: Engine, portrait_jpg: bytes
) -> None:
    name = engine.default_model
    r = client.post(f"/v1/analyze?model={name}", files={"file": ("p.jpg", portrait_jpg, "image/jpeg")})
    assert r.status_code == 200
    r = client.post("/v1/analyze?model=nope", files={"file": ("p.jpg", portrait_jpg, "image/jpeg")})
    body = assert_error(r, 404, "unknown_model")
    assert body["available"] == list(engine.models) and name in body["message"]
    assert_error(client.get("/v1/models/nope/onnx"), 404, "unknown_model")
    # a retired name is served by its successor (the FER+ models became emoar-vgg-ferplus)
    assert "emoar-vgg-ferplus" in engine.models and "emoar-resnet-ferplus" not in engine.models
    for old in ("emoar-resnet-ferplus", "emoar-ferplus-ensemble"):
        r = client.post(f"/v1/analyze?model={old}", files={"file": ("p.jpg", portrait_jpg, "image/jpeg")})
        assert r.status_code == 200, r.text
        faces = r.json()["faces"]
        assert len(faces) == 1 and "contempt" in faces[0]["probs"]


_SMALL_JPEG = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()

BAD_UPLOADS = [
    pytest.param(
        {"file": ("corrupt.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20, "image/jpeg")},
        400,
        "undecodable_image",
        id="corrupt-jpeg",
    ),
    pytest.param(
        {"file": ("notes.jpg", b"just some text, not a photo\n" * 10, "image/jpeg")},
        400,
        "undecodable_image",
        id="text-named-jpg",
    ),
    pytest.param({"file": ("empty.jpg", b"", "image/jpeg")}, 400, "empty_file", id="zero-bytes"),
    pytest.param(
        {"file": ("doc.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "application/pdf")},
        415,
        "unsupported_media_type",
        id="pdf",
    ),
    pytest.param(
        {"file": ("notes.txt", b"hello\n", "text/plain")}, 415, "unsupported_media_type", id="text-file"
    ),
    pytest.param(
        {"file": ("a.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml")},
        415,
        "unsupported_media_type",
        id="svg",
    ),
    pytest.param(
        {"file": ("photo.jpg", b"PK\x03\x04" + b"\0" * 100, "image/jpeg")},
        415,
        "unsupported_media_type",
        id="zip-named-jpg",
    ),
    pytest.param(
        {"image": ("p.jpg", _SMALL_JPEG, "image/jpeg")}, 422, "missing_field", id="wrong-field-name"
    ),
    pytest.param(None, 422, "missing_field", id="no-body"),
]


@pytest.mark.parametrize(("files", "status", "code"), BAD_UPLOADS)
def test_analyze_errors_are_json_4xx_and_the_server_keeps_serving(
    client: TestClient, portrait_jpg: bytes, files: dict | None, status: int, code: str
) -> None:
    r = client.post("/v1/analyze", files=files) if files is not None else client.post("/v1/analyze")
    assert_error(r, status, code)
    _assert_still_serving(client, portrait_jpg)


def test_truncated_real_jpeg_is_400(client: TestClient, portrait_jpg: bytes) -> None:
    r = client.post("/v1/analyze", files={"file": ("cut.jpg", portrait_jpg[:2000], "image/jpeg")})
    assert "corrupt or truncated JPEG" in assert_error(r, 400, "undecodable_image")["message"]


def test_non_multipart_body_is_422(client: TestClient, portrait_jpg: bytes) -> None:
    r = client.post("/v1/analyze", content=portrait_jpg, headers={"content-type": "image/jpeg"})
    assert_error(r, 422, "missing_field")
    r = client.post("/v1/analyze", json={"file": "x"})
    assert_error(r, 422, "missing_field")


def test_bad_query_parameter_is_422(client: TestClient, portrait_jpg: bytes) -> None:
    r = client.post("/v1/analyze?annotate=maybe", files={"file": ("p.jpg", portrait_jpg, "image/jpeg")})
    body = assert_error(r, 422, "invalid_request")
    assert body["detail"][0]["loc"][-1] == "annotate"


def test_50_megapixel_image_is_413(client: TestClient, png_50mp: bytes, portrait_jpg: bytes) -> None:
    assert len(png_50mp) < 1_000_000  # flat colour compresses small: the limit is on pixels, not bytes
    r = client.post("/v1/analyze", files={"file": ("huge.png", png_50mp, "image/png")})
    body = assert_error(r, 413, "image_too_large")
    assert "8000x6250" in body["message"]
    _assert_still_serving(client, portrait_jpg)


def test_oversize_upload_is_413(make_app: Callable[..., FastAPI], portrait_jpg: bytes) -> None:
    with TestClient(make_app(max_upload_bytes=10_000)) as c:
        r = c.post("/v1/analyze", files={"file": ("p.jpg", portrait_jpg, "image/jpeg")})  # 64 KB > 10 KB
        body = assert_error(r, 413, "upload_too_large")
        assert body["limit_bytes"] == 10_000
        assert c.post("/v1/analyze", files={"file": ("s.jpg", _SMALL_JPEG, "image/jpeg")}).status_code == 200


def test_rate_limit_is_429_per_client(make_app: Callable[..., FastAPI], portrait_jpg: bytes) -> None:
    small = _SMALL_JPEG
    with TestClient(make_app(rate_limit_per_minute=1, rate_limit_burst=3)) as c:
        codes = [
            c.post("/v1/analyze", files={"file": ("s.jpg", small, "image/jpeg")}).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 200]
        r = c.post("/v1/analyze", files={"file": ("s.jpg", small, "image/jpeg")})
        body = assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1 and body["retry_after_s"] > 0
        assert c.get("/healthz").status_code == 200  # health checks are not rate limited
    with TestClient(
        make_app(rate_limit_per_minute=1, rate_limit_burst=3), client=("10.0.0.7", 5000)
    ) as other:
        assert other.post("/v1/analyze", files={"file": ("s.jpg", small, "image/jpeg")}).status_code == 200


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    assert_error(client.get("/v1/analyze"), 405, "method_not_allowed")


def test_openapi_docs_are_served_offline(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/healthz", "/v1/models", "/v1/analyze", "/v1/analyze/video"} <= set(spec["paths"])
    body = spec["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn." not in docs.text


def test_cors_is_closed_by_default_and_opt_in(client: TestClient, make_app: Callable[..., FastAPI]) -> None:
    r = client.get("/healthz", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    with TestClient(make_app(cors_origins=("http://localhost:3000",))) as c:
        r = c.get("/healthz", headers={"Origin": "http://localhost:3000"})
        assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
        r = c.get("/healthz", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_pages_and_assets(client: TestClient) -> None:
    for path in ("/", "/upload"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/assets/emoji/happy.png").content[:8] == b"\x89PNG\r\n\x1a\n"
    assert_error(client.get("/assets/emoji/../../secret.png"), 404)
    assert_error(client.get("/assets/emoji/nope.png"), 404, "not_found")
    quotes = client.get("/assets/quotes.json").json()["quotes"]
    assert set(LABELS) <= set(quotes)
    style = client.get("/assets/overlay.json").json()
    assert style["colors"]["happy"].startswith("#") and "uncertain" in style["sprites"]
    assert client.get("/static/js/live.js").headers["content-type"].startswith("text/javascript")


def test_page_says_what_to_run_when_vendor_files_are_missing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emoar.web.routes import pages

    monkeypatch.setattr(pages, "missing_vendor_files", lambda: ["onnxruntime-web/ort.wasm.min.js"])
    r = client.get("/")
    assert 'id="vendor-missing"' in r.text and "npm ci" in r.text and 'data-vendor="missing"' in r.text


def test_vendored_front_end_is_installed() -> None:
    from emoar.web.routes.pages import VENDOR_BUILD_HINT, missing_vendor_files

    missing = missing_vendor_files()
    if missing == ["manifest.json"]:
        pytest.skip(f"front-end packages not vendored; run {VENDOR_BUILD_HINT}")
    assert missing == []


def test_no_page_references_another_origin() -> None:
    """The pages, scripts and styles we ship name no URL outside localhost (no CDN at run time)."""
    import re
    from importlib import resources

    web = resources.files("emoar.web")
    texts = {
        f"templates/{p.name}": p.read_text()
        for p in web.joinpath("templates").iterdir()
        if p.name.endswith(".html")
    }
    for sub in ("js", "css"):
        for p in web.joinpath("static", sub).iterdir():
            texts[f"static/{sub}/{p.name}"] = p.read_text()
    assert len(texts) >= 8
    for name, text in texts.items():
        urls = re.findall(r"(?:https?:)?//[a-zA-Z0-9.-]+\.[a-z]{2,}[^\s\"'`)]*", text)
        assert urls == [], f"{name} references {urls}"


def test_video_json_and_csv(client: TestClient, clip_mp4: bytes, engine: Engine) -> None:
    r = client.post("/v1/analyze/video", files={"file": ("clip.mp4", clip_mp4, "video/mp4")})
    assert r.status_code == 200, r.text
    body = VideoOut.model_validate(r.json()).model_dump()
    assert body["video"] == "clip.mp4" and body["fps"] == pytest.approx(10.0) and len(body["frames"]) == 10
    assert [f["frame"] for f in body["frames"]] == list(range(10))
    assert body["frames"][3]["timestamp_ms"] == pytest.approx(300.0)
    ids = {face["track_id"] for f in body["frames"] for face in f["faces"]}
    assert all(len(f["faces"]) == 1 for f in body["frames"]) and len(ids) == 1 and None not in ids
    (track,) = body["tracks"]  # one person: one summary, consistent with the frames
    assert track["track_id"] in ids and track["frames"] == 10
    assert (track["first_ms"], track["last_ms"]) == (pytest.approx(0.0), pytest.approx(900.0))
    assert sum(track["mean_probs"].values()) == pytest.approx(1.0, abs=1e-3)
    tops = [f["faces"][0]["expression"] for f in body["frames"]]
    assert track["shares"][max(set(tops), key=tops.count)] == pytest.approx(
        tops.count(max(set(tops), key=tops.count)) / 10
    )
    assert track["dominant"] == max(track["mean_probs"], key=track["mean_probs"].get)
    assert "annotated_webm_base64" not in r.json()

    r = client.post(
        "/v1/analyze/video?format=csv&stride=2", files={"file": ("clip.mp4", clip_mp4, "video/mp4")}
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="clip_emoar.csv"' in r.headers["content-disposition"]
    lines = r.text.strip().splitlines()
    labels = engine.model(None).labels
    assert lines[0].split(",") == [
        "frame",
        "timestamp_ms",
        "track_id",
        "x1",
        "y1",
        "x2",
        "y2",
        "score",
        "expression",
        "uncertain",
        *(f"p_{n}" for n in labels),
    ]
    rows = [line.split(",") for line in lines[1:]]
    assert [int(row[0]) for row in rows] == [0, 2, 4, 6, 8]
    assert all(row[9] in ("0", "1") and abs(sum(map(float, row[10:])) - 1) < 5e-3 for row in rows)


@pytest.mark.parametrize(
    ("name", "make", "status", "code"),
    [
        ("cut.mp4", lambda clip, img: clip[: len(clip) // 2], 400, "undecodable_video"),
        ("noise.mp4", lambda clip, img: clip[:32] + bytes(4000), 400, "undecodable_video"),
        ("photo.jpg", lambda clip, img: img, 415, "unsupported_media_type"),
        ("notes.mp4", lambda clip, img: b"not a video\n" * 20, 415, "unsupported_media_type"),
        ("empty.mp4", lambda clip, img: b"", 400, "empty_file"),
    ],
)
def test_video_errors(
    client: TestClient, clip_mp4: bytes, portrait_jpg: bytes, name: str, make, status: int, code: str
) -> None:
    r = client.post("/v1/analyze/video", files={"file": (name, make(clip_mp4, portrait_jpg), "video/mp4")})
    assert_error(r, status, code)
    _assert_still_serving(client, portrait_jpg)


def test_video_longer_than_the_limit_is_413(make_app: Callable[..., FastAPI], clip_mp4: bytes) -> None:
    with TestClient(make_app(max_video_seconds=0.5)) as c:
        body = assert_error(
            c.post("/v1/analyze/video", files={"file": ("clip.mp4", clip_mp4, "video/mp4")}),
            413,
            "clip_too_long",
        )
        assert body["max_seconds"] == 0.5
    with TestClient(make_app(max_video_frames=4)) as c:
        r = c.post("/v1/analyze/video", files={"file": ("clip.mp4", clip_mp4, "video/mp4")})
        assert "limit is 4" in assert_error(r, 413, "clip_too_long")["message"]
        r = c.post("/v1/analyze/video?stride=3", files={"file": ("clip.mp4", clip_mp4, "video/mp4")})
        assert r.status_code == 200 and len(r.json()["frames"]) == 4


def test_models_load_in_lifespan_not_at_create(portrait_jpg: bytes) -> None:
    """create_app loads nothing; the lifespan loads the engine; a request before it is a 503, not a 500."""
    from emoar.web.app import create_app
    from emoar.web.settings import Settings

    app = create_app(Settings(model="/nonexistent/model.onnx"))
    assert app.state.engine is None
    c = TestClient(app)  # without ``with``: no lifespan
    assert_error(c.get("/v1/models"), 503, "unavailable")
    with pytest.raises(Exception, match="not found"), TestClient(app):
        pass


def test_dependency_override(make_app: Callable[..., FastAPI], engine: Engine) -> None:
    from emoar.web.deps import get_engine

    app = make_app()
    app.dependency_overrides[get_engine] = lambda: engine
    with TestClient(app) as c:
        assert c.get("/v1/models").json()["default"] == engine.default_model


def test_error_bodies_are_valid_json_everywhere(client: TestClient) -> None:
    for r in (client.post("/v1/analyze"), client.get("/nope"), client.post("/v1/analyze/video?format=xml")):
        assert r.status_code < 500
        json.loads(r.text)


def test_video_annotate_returns_a_playable_webm(client: TestClient, clip_mp4: bytes, tmp_path: Path) -> None:
    import cv2

    r = client.post(
        "/v1/analyze/video?annotate=true&stride=2", files={"file": ("clip.mp4", clip_mp4, "video/mp4")}
    )
    assert r.status_code == 200, r.text
    webm = base64.b64decode(r.json()["annotated_webm_base64"])
    assert webm[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a Matroska / WebM file
    path = tmp_path / "a.webm"
    path.write_bytes(webm)
    frames = decoded_frames(path)
    assert len(frames) == 5 and frames[0].shape == (480, 640, 3)  # every 2nd of 10 frames
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FOURCC)) in (0, cv2.VideoWriter.fourcc(*"VP80"))
    cap.release()
    # the overlays are drawn: the annotated frame differs from the source frame around the face
    src = cv2.VideoCapture()
    clip = tmp_path / "c.mp4"
    clip.write_bytes(clip_mp4)
    src.open(str(clip))
    ok, first = src.read()
    src.release()
    assert ok and float(np.abs(frames[0].astype(int) - first.astype(int)).mean()) > 3.0

    bad = client.post(
        "/v1/analyze/video?annotate=true&format=csv", files={"file": ("clip.mp4", clip_mp4, "video/mp4")}
    )
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_parameter"
