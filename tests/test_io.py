"""emoar.io: image decoding of every layout, clear errors for bad inputs, video round trips."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from emoar.io import (
    ImageReadError,
    ImageTooLargeError,
    VideoOpenError,
    VideoSink,
    VideoSource,
    VideoWriteError,
    decode_image,
    downscale_for,
    iter_images,
    read_image,
)

# ---------------------------------------------------------------------------- images: good inputs


def assert_bgr8(img: np.ndarray, shape_hw: tuple[int, int]) -> None:
    assert img.dtype == np.uint8
    assert img.shape == (*shape_hw, 3)
    assert img.flags["C_CONTIGUOUS"]


def test_real_jpeg_matches_cv2_imread(photos_dir: Path) -> None:
    path = photos_dir / "portrait.jpg"
    img = read_image(path)
    assert_bgr8(img, (445, 681))
    np.testing.assert_array_equal(img, cv2.imread(str(path), cv2.IMREAD_COLOR))
    np.testing.assert_array_equal(decode_image(path.read_bytes(), path.name), img)


def test_grayscale_png(tmp_path: Path, photos_dir: Path) -> None:
    gray = cv2.imread(str(photos_dir / "portrait_2.jpg"), cv2.IMREAD_GRAYSCALE)
    path = tmp_path / "gray.png"
    cv2.imwrite(str(path), gray)
    img = read_image(path)
    assert_bgr8(img, gray.shape)
    for c in range(3):
        np.testing.assert_array_equal(img[:, :, c], gray)


def test_bgra_png_composited_on_white_or_alpha_dropped(tmp_path: Path, photos_dir: Path) -> None:
    bgr = cv2.imread(str(photos_dir / "portrait_2.jpg"))
    alpha = np.full(bgr.shape[:2], 255, np.uint8)
    alpha[:, : bgr.shape[1] // 2] = 0  # left half transparent
    alpha[:10, -10:] = 128  # a half-transparent corner
    path = tmp_path / "rgba.png"
    cv2.imwrite(str(path), np.dstack([bgr, alpha]))
    img = read_image(path)
    assert_bgr8(img, bgr.shape[:2])
    assert (img[:, : bgr.shape[1] // 2] == 255).all()
    np.testing.assert_array_equal(img[20:, -40:], bgr[20:, -40:])
    expected = np.round(bgr[:10, -10:] * (128 / 255) + 255 * (127 / 255))
    np.testing.assert_allclose(img[:10, -10:], expected, atol=1)
    np.testing.assert_array_equal(read_image(path, alpha="drop"), bgr)


def test_gray_alpha_png(tmp_path: Path) -> None:
    la = np.dstack([np.full((8, 6), 100, np.uint8), np.tile([0, 255], (8, 3)).astype(np.uint8)])
    buf = io.BytesIO()
    Image.fromarray(la, "LA").save(buf, "PNG")
    img = decode_image(buf.getvalue(), "la.png")
    assert_bgr8(img, (8, 6))
    assert (img[:, 0::2] == 255).all() and (img[:, 1::2] == 100).all()


@pytest.mark.parametrize("ext", [".png", ".tiff"])
@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_images(tmp_path: Path, photos_dir: Path, ext: str, channels: int) -> None:
    bgr = cv2.imread(str(photos_dir / "portrait_2.jpg"))
    src8 = bgr if channels == 3 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    src16 = src8.astype(np.uint16) * 257  # full 16-bit range: 255 -> 65535
    path = tmp_path / f"deep{ext}"
    assert cv2.imwrite(str(path), src16)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    img = read_image(path)
    assert_bgr8(img, bgr.shape[:2])
    expected = src8 if channels == 3 else cv2.cvtColor(src8, cv2.COLOR_GRAY2BGR)
    np.testing.assert_array_equal(img, expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_cv2_imread(
    tmp_path: Path, photos_dir: Path, orientation: int
) -> None:
    rgb = Image.open(photos_dir / "portrait_2.jpg").convert("RGB")  # 240x320, not square
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    rgb.save(path, exif=exif.tobytes(), quality=95)
    img = read_image(path)
    np.testing.assert_array_equal(img, cv2.imread(str(path), cv2.IMREAD_COLOR))
    assert img.shape[:2] == ((320, 240) if orientation <= 4 else (240, 320))
    np.testing.assert_array_equal(decode_image(path.read_bytes(), path.name), img)


def test_iter_images_expands_folders_and_skips_bad_files(tmp_path: Path, photos_dir: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((photos_dir / "portrait_2.jpg").read_bytes())
    (folder / "b.jpg").write_text("not an image")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    got = list(iter_images([folder, photos_dir / "portrait.jpg"], skip_errors=True))
    assert [p.name for p, _ in got] == ["a.jpg", "portrait.jpg"]
    with pytest.raises(ImageReadError, match="b.jpg"):
        list(iter_images([folder]))


def test_downscale_for(photos_dir: Path) -> None:
    img = read_image(photos_dir / "portrait.jpg")  # 681x445
    small, scale = downscale_for(img, 320)
    assert max(small.shape[:2]) == 320 and scale == pytest.approx(320 / 681)
    assert small.shape[0] == round(445 * scale)
    same, one = downscale_for(img, 1000)
    assert same is img and one == 1.0
    with pytest.raises(ValueError):
        downscale_for(img, 0)


# ----------------------------------------------------------------------------- images: bad inputs


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=r"nope\.jpg.*no such file") as info:
        read_image(tmp_path / "nope.jpg")
    assert info.value.path.endswith("nope.jpg") and info.value.reason.startswith("no such file")


def test_missing_file_suggests_near_names(tmp_path: Path) -> None:
    (tmp_path / "face.png").write_bytes(b"x")
    with pytest.raises(ImageReadError, match=r"did you mean face\.png"):
        read_image(tmp_path / "face.jpg")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="is a directory") as info:
        read_image(tmp_path)
    assert tmp_path.name in str(info.value)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.jpg.*empty \(0 bytes\)"):
        read_image(path)
    with pytest.raises(ImageReadError, match=r"upload\.png.*0 bytes"):
        decode_image(b"", "upload.png")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("hello, I am not a photo\n")
    with pytest.raises(ImageReadError, match=r"notes\.jpg.*looks like text"):
        read_image(path)


@pytest.mark.parametrize("keep_bytes", [300, 5000])
def test_truncated_jpeg(tmp_path: Path, photos_dir: Path, keep_bytes: int) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes((photos_dir / "portrait.jpg").read_bytes()[:keep_bytes])
    with pytest.raises(ImageReadError, match=r"cut\.jpg.*corrupt or truncated JPEG"):
        read_image(path)


def test_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match=r"noise\.png.*(not a supported image format|corrupt)"):
        read_image(path)


def test_max_pixels_guard(photos_dir: Path) -> None:
    data = (photos_dir / "portrait.jpg").read_bytes()
    with pytest.raises(ImageTooLargeError, match=r"big\.jpg.*681x445") as info:
        decode_image(data, "big.jpg", max_pixels=100_000)
    assert isinstance(info.value, ImageReadError)  # callers catching ImageReadError still do
    assert (info.value.width, info.value.height, info.value.max_pixels) == (681, 445, 100_000)
    assert decode_image(data, "ok.jpg", max_pixels=681 * 445).shape == (445, 681, 3)


# --------------------------------------------------------------------------------------- video


def moving_square_frames(n: int, size_wh: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    w, h = size_wh
    xx, yy = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    frames = []
    for k in range(n):
        frame = np.dstack([xx, yy, np.full_like(xx, 128)]).astype(np.uint8)
        cv2.rectangle(frame, (10 + 4 * k, 30), (50 + 4 * k, 70), (0, 0, 255), -1)
        frames.append(frame)
    return frames


@pytest.mark.parametrize(("name", "fourcc"), [("clip.mp4", "mp4v"), ("clip.webm", "VP80")])
def test_sink_source_round_trip(tmp_path: Path, name: str, fourcc: str) -> None:
    """The extension picks the codec: MPEG-4 Part 2 for .mp4, VP8 for .webm (browsers play it)."""
    frames = moving_square_frames(20)
    out = tmp_path / "sub" / name  # parent folder is created
    with VideoSink(out, fps=10) as sink:
        assert sink.fourcc == fourcc
        for f in frames:
            sink.write(f)
    assert out.is_file() and sink.frames_written == 20
    assert sorted(p.name for p in out.parent.iterdir()) == [name]  # no temp file left
    with VideoSource(out) as src:
        assert src.frame_count == 20 and src.resolution_wh == (160, 120)
        assert src.fps == pytest.approx(10)
        got = list(src)
    assert [i for i, _, _ in got] == list(range(20))
    np.testing.assert_allclose([t for _, t, _ in got], np.arange(20) * 100.0)
    for (_, _, back), orig in zip(got, frames, strict=True):
        assert back.shape == orig.shape and back.dtype == np.uint8
        assert np.abs(back.astype(int) - orig).mean() < 6  # lossy codec, close content


def test_source_from_a_start_frame_with_presentation_times(tmp_path: Path) -> None:
    """``start_frame`` seeks (what ``emoar batch`` chunks use); indices, timestamps and the
    container's presentation times count from there; past the end is a clear error."""
    frames = moving_square_frames(20)
    out = tmp_path / "c.mp4"
    with VideoSink(out, fps=10) as sink:
        for f in frames:
            sink.write(f)
    with VideoSource(out, start_frame=12) as src:
        got = [(i, t, src.pts_ms, f) for i, t, f in src]
    assert [i for i, *_ in got] == list(range(12, 20))
    np.testing.assert_allclose([t for _, t, _, _ in got], np.arange(12, 20) * 100.0)
    np.testing.assert_allclose([p for _, _, p, _ in got], np.arange(12, 20) * 100.0, atol=1.0)
    assert np.abs(got[0][3].astype(int) - frames[12]).mean() < 6  # the frame sought, not frame 0
    with pytest.raises(VideoOpenError, match="from frame 25"):
        VideoSource(out, start_frame=25)


def test_source_iterates_once(tmp_path: Path) -> None:
    out = tmp_path / "c.mp4"
    with VideoSink(out, fps=5) as sink:
        for f in moving_square_frames(3):
            sink.write(f)
    with VideoSource(str(out)) as src:
        assert len(list(src)) == 3
        with pytest.raises(RuntimeError, match="once"):
            iter(src)


def test_sink_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "partial.mp4"
    with pytest.raises(KeyError), VideoSink(out, fps=10) as sink:
        for f in moving_square_frames(5):
            sink.write(f)
        raise KeyError("pipeline crashed mid-way")
    assert list(tmp_path.iterdir()) == []


def test_sink_rejects_wrong_frames_and_empty_output(tmp_path: Path) -> None:
    out = tmp_path / "bad.mp4"
    sink = VideoSink(out, fps=10)
    sink.write(moving_square_frames(1)[0])
    with pytest.raises(VideoWriteError, match=r"bad\.mp4.*80x60.*160x120"):
        sink.write(np.zeros((60, 80, 3), np.uint8))
    with pytest.raises(VideoWriteError, match="uint8"):
        sink.write(np.zeros((120, 160, 3), np.float32))
    sink.abort()
    with pytest.raises(VideoWriteError, match="no frames"):
        VideoSink(tmp_path / "none.mp4", fps=10).close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        VideoSink(out, fps=0)


def test_video_source_errors(tmp_path: Path) -> None:
    with pytest.raises(VideoOpenError, match=r"missing\.mp4.*no such file"):
        VideoSource(tmp_path / "missing.mp4")
    with pytest.raises(VideoOpenError, match="is a directory"):
        VideoSource(tmp_path)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoOpenError, match=r"empty\.mp4.*0 bytes"):
        VideoSource(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoOpenError, match=r"notes\.mp4"):
        VideoSource(text)


@pytest.mark.skipif(Path("/dev/video0").exists(), reason="a camera exists on this machine")
@pytest.mark.parametrize("index", [0, "0"])
def test_missing_camera(index: int | str) -> None:
    with pytest.raises(VideoOpenError, match=r"^No camera at index 0 \("):
        VideoSource(index)


def _clip(tmp_path: Path, n: int = 20) -> Path:
    from emoar.io import VideoSink

    path = tmp_path / "clip.mp4"
    with VideoSink(path, fps=10) as sink:
        for i in range(n):
            frame = np.full((48, 64, 3), 10 * i % 250, np.uint8)
            sink.write(frame)
    return path


def test_prefetch_yields_the_same_frames_and_stops_early(tmp_path: Path) -> None:
    import threading

    from emoar.io import VideoSource, prefetch

    path = _clip(tmp_path)
    with VideoSource(path) as a, VideoSource(path) as b:
        direct = list(a)
        ahead = list(prefetch(b, depth=2))
    assert [i for i, _, _ in ahead] == list(range(20))
    assert all(np.array_equal(x[2], y[2]) and x[1] == y[1] for x, y in zip(direct, ahead, strict=True))
    before = threading.active_count()
    with VideoSource(path) as c:
        for i, _, _ in prefetch(c, depth=2):
            if i == 3:
                break
    assert threading.active_count() <= before  # the reader thread ended with the loop


def test_prefetch_raises_the_producers_error_in_place() -> None:
    from emoar.io import prefetch

    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [1, 2]


def test_threaded_sink_writes_every_frame_and_reports_errors(tmp_path: Path) -> None:
    from emoar.io import ThreadedSink, VideoSink, VideoSource, VideoWriteError

    out = tmp_path / "out.mp4"
    with ThreadedSink(VideoSink(out, fps=10), depth=2) as sink:
        for i in range(30):
            sink.write(np.full((48, 64, 3), i * 8, np.uint8))
    assert sink.frames_written == 30
    with VideoSource(out) as src:
        assert sum(1 for _ in src) == 30
    bad = tmp_path / "bad.mp4"
    sink = ThreadedSink(VideoSink(bad, fps=10))
    sink.write(np.zeros((48, 64, 3), np.uint8))
    sink.write(np.zeros((40, 64, 3), np.uint8))  # wrong size: the writer thread fails
    with pytest.raises(VideoWriteError, match="frame is 64x40"):
        sink.close()
    assert not bad.exists() and not list(tmp_path.glob(".bad.*"))


def test_memory_webm_sink_round_trip(tmp_path: Path) -> None:
    """VP8 WebM encoded in memory (what annotated clips of the web app are) reads back."""
    pytest.importorskip("av", reason="PyAV is not installed (pip install 'emoar[web]')")
    from emoar.io.video import MemoryWebMSink

    frames = moving_square_frames(12)
    sink = MemoryWebMSink(fps=10)
    for f in frames:
        sink.write(f)
    data = sink.close()
    assert data[:4] == b"\x1a\x45\xdf\xa3" and sink.close() is data and sink.frames_written == 12
    path = tmp_path / "m.webm"
    path.write_bytes(data)
    with VideoSource(path) as src:
        got = [f for _, _, f in src]
    assert len(got) == 12
    for back, orig in zip(got, frames, strict=True):
        assert back.shape == orig.shape and np.abs(back.astype(int) - orig).mean() < 8

    odd = MemoryWebMSink(fps=5)
    odd.write(np.zeros((121, 161, 3), np.uint8))  # 4:2:0 needs even sizes: cropped by one pixel
    with pytest.raises(VideoWriteError, match="160x120"):
        odd.write(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(VideoWriteError, match="no frames"):
        MemoryWebMSink(fps=5).close()
    with pytest.raises(ValueError, match="fps"):
        MemoryWebMSink(fps=0)
