"""Settings from the environment, the token bucket, content sniffing and the multipart parser."""

from __future__ import annotations

import pytest

from emoar.web.errors import ApiError
from emoar.web.ratelimit import TokenBucketLimiter
from emoar.web.settings import Settings, SettingsError
from emoar.web.uploads import claims_image, parse_multipart, sniff


def test_settings_defaults_are_safe() -> None:
    s = Settings()
    assert s.host == "127.0.0.1" and s.cors_origins == () and s.rate_limit_per_minute > 0
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]  # frozen


def test_settings_from_env_and_overrides() -> None:
    env = {
        "EMOAR_PORT": "9000",
        "EMOAR_MAX_UPLOAD_BYTES": "5_000_000",
        "EMOAR_CORS_ORIGINS": "http://a.b, http://c.d",
        "EMOAR_CROSS_ORIGIN_ISOLATION": "yes",
        "EMOAR_MAX_VIDEO_SECONDS": "12.5",
        "EMOAR_MODEL": "m1",
        "OTHER": "ignored",
    }
    s = Settings.from_env(env, model=None, detector="haar")
    assert (s.port, s.max_upload_bytes, s.max_video_seconds) == (9000, 5_000_000, 12.5)
    assert s.cors_origins == ("http://a.b", "http://c.d") and s.cross_origin_isolation is True
    assert s.model == "m1" and s.detector == "haar"  # None overrides are ignored, others win
    assert Settings.from_env({}, port=8123).port == 8123


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"EMOAR_PORT": "eighty"}, "EMOAR_PORT"),
        ({"EMOAR_PORT": "70000"}, "port"),
        ({"EMOAR_MAX_PIXELS": "0"}, "max_pixels"),
        ({"EMOAR_CROSS_ORIGIN_ISOLATION": "maybe"}, "EMOAR_CROSS_ORIGIN_ISOLATION"),
        ({"EMOAR_RATE_LIMIT_PER_MINUTE": "-1"}, "rate_limit"),
    ],
)
def test_settings_errors_name_the_variable(env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        Settings.from_env(env)


def test_settings_unknown_override() -> None:
    with pytest.raises(SettingsError, match="Unknown setting 'colour'"):
        Settings.from_env({}, colour="red")


def test_token_bucket() -> None:
    now = [0.0]
    lim = TokenBucketLimiter(rate_per_minute=60, burst=2, clock=lambda: now[0], max_keys=2)
    assert [lim.acquire("a")[0] for _ in range(3)] == [True, True, False]
    allowed, retry = lim.acquire("a")
    assert not allowed and retry == pytest.approx(1.0)
    assert lim.acquire("b")[0]  # keys are independent
    now[0] = 1.0
    assert lim.acquire("a")[0] and not lim.acquire("a")[0]  # one token per second
    lim.acquire("c")  # evicts the least recently used key beyond max_keys
    assert len(lim._buckets) == 2
    assert TokenBucketLimiter.retry_after_header(0.2) == "1"
    off = TokenBucketLimiter(rate_per_minute=0, burst=1)
    assert all(off.acquire("x")[0] for _ in range(100))


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WebP"),
        (b"GIF89a\x01\x00", "GIF"),
        (b"II*\x00\x08\x00", "TIFF"),
        (b"BM" + b"\x00" * 12 + (40).to_bytes(4, "little") + b"\x00" * 8, "BMP"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00", "MP4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00", "QuickTime"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00", "HEIF/AVIF"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86", "WebM/Matroska"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "AVI"),
        (b"%PDF-1.7", "PDF"),
        (b'  <svg xmlns="x">', "SVG"),
        (b"<!DOCTYPE html><html>", "HTML"),
        (b"BMxx not a bitmap header", None),
        (b"hello world", None),
        (b"", None),
    ],
)
def test_sniff(head: bytes, fmt: str | None) -> None:
    assert sniff(head) == fmt


def test_claims_image() -> None:
    assert (
        claims_image("a.JPG", None)
        and claims_image(None, "image/png")
        and claims_image("x", "image/jpeg; q=1")
    )
    assert (
        not claims_image("a.txt", "text/plain")
        and not claims_image(None, None)
        and not claims_image("a.svg", "")
    )


def test_parse_multipart_keeps_everything_in_memory() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + b"\xff\xd8\xff" + b"\x00" * 3_000_000 + b"\r\n--XyZ--\r\n"
    )
    parts = parse_multipart(body, "multipart/form-data; boundary=XyZ")
    f = parts["file"]
    assert (f.filename, f.content_type, len(f.data)) == ("p.jpg", "image/jpeg", 3_000_003)
    assert isinstance(f.data, bytes) and parts["note"].data == b"hi" and parts["note"].filename is None


@pytest.mark.parametrize("ctype", [None, "application/json", "multipart/form-data", "text/plain; boundary=x"])
def test_parse_multipart_rejects_other_bodies(ctype: str | None) -> None:
    with pytest.raises(ApiError) as e:
        parse_multipart(b"{}", ctype)
    assert e.value.status == 422


def test_parse_multipart_utf8_file_names() -> None:
    body = (
        '--b\r\nContent-Disposition: form-data; name="file"; filename="ñandú 😀.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\nxx\r\n--b--\r\n"
    ).encode()
    assert parse_multipart(body, "multipart/form-data; boundary=b")["file"].filename == "ñandú 😀.jpg"


def test_pipeline_options_nest_in_the_environment(engine) -> None:
    s = Settings.from_env(
        {
            "EMOAR_PIPELINE__TRACKER__MIN_HITS": "3",
            "EMOAR_PIPELINE__SMOOTHER__HALF_LIFE_MS": "250",
            "EMOAR_PIPELINE__CLASSIFIER__TTA": "flip",
            "EMOAR_PIPELINE__OVERLAY__SHOW_QUOTE": "off",
            "EMOAR_NUM_THREADS": "2",
        }
    )
    p = s.pipeline
    assert p.tracker.min_hits == 3 and p.smoother.half_life_ms == 250.0 and p.classifier.tta == "flip"
    assert p.overlay.show_quote is False
    assert p.classifier.num_threads == 2 and p.detector.num_threads == 2  # one name, both stages
    from emoar.web.engine import Engine

    eng = Engine(dict(engine.models), engine.default_model, s)
    opts = eng._options(engine.default_model)
    assert opts.tracker.min_hits == 3 and opts.classifier.model == engine.default_model


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"EMOAR_PIPELINE__SMOOTHER__ALPHA": "0"}, "alpha must be in"),
        ({"EMOAR_PIPELINE__TRACKERS__MAX_AGE": "1"}, "unknown pipeline part"),
        ({"EMOAR_PIPELINE__TRACKER__MAX_AGES": "1"}, "unknown TrackerOptions field"),
        ({"EMOAR_PIPELINE__CLASSIFIER__MODEL": "x"}, "EMOAR_MODEL"),
        ({"EMOAR_PIPELINE__OVERLAY__SHOW_QUOTE": "maybe"}, "yes/no"),
    ],
)
def test_pipeline_settings_errors(env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        Settings.from_env(env)
