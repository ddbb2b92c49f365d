"""Top camera: simulated photos carry readable labels and repeat for a seed; real video is read."""

import cv2
import numpy as np
import pytest

from edge.config import CaptureCameraConfig, SimCameraConfig
from edge.imaging.barcode import draw_qr, read_label
from edge.sources.camera import CameraError, CaptureCamera, open_camera
from edge.types import BeltEvent
from simulator.camera import SimCamera

BATCH = 40
MIN_READ_RATE = 0.95


def random_parcels(count: int, seed: int):
    """(id, (length, width) mm, kind) over the simulator's range of parcels."""
    rng = np.random.default_rng(seed)
    for n in range(count):
        size = (float(rng.uniform(220, 800)), float(rng.uniform(160, 600)))
        yield f"EDG{seed:02d}{n:07d}", size, "box" if rng.random() < 0.6 else "bag"


@pytest.mark.parametrize("code", ["qr", "code128"])
def test_sim_photos_carry_readable_labels(code):
    camera = SimCamera(SimCameraConfig(code=code), seed=7)
    assert isinstance(camera, SimCamera)
    misread = []
    for parcel_id, size, kind in random_parcels(BATCH, seed=11):
        photo = camera.photograph(parcel_id, size, kind, t=2.5, encoder=1234)
        assert photo.image.shape == (1080, 1920, 3) and photo.image.dtype == np.uint8
        assert (photo.t, photo.encoder) == (2.5, 1234)
        got = read_label(photo.image)
        if got != parcel_id:
            misread.append((parcel_id, kind, got))
    rate = 1 - len(misread) / BATCH
    assert rate >= MIN_READ_RATE, f"{code}: read {rate:.0%} of {BATCH}; misread {misread}"


def test_sim_photos_repeat_for_a_seed():
    config = SimCameraConfig(width=640, height=360, field_mm=1100)
    first = SimCamera(config, seed=3).photograph("EDG030000001", (400, 300), "box", 1.0, 100)
    again = SimCamera(config, seed=3).photograph("EDG030000001", (400, 300), "box", 9.0, 900)
    np.testing.assert_array_equal(first.image, again.image)
    other_id = SimCamera(config, seed=3).photograph("EDG030000002", (400, 300), "box", 1.0, 100)
    other_seed = SimCamera(config, seed=4).photograph("EDG030000001", (400, 300), "box", 1.0, 100)
    assert not np.array_equal(first.image, other_id.image)
    assert not np.array_equal(first.image, other_seed.image)


def test_sim_photo_shows_a_parcel_on_a_dark_belt():
    config = SimCameraConfig(width=960, height=540, field_mm=1100)
    photo = SimCamera(config, seed=1).photograph("EDG010000001", (500, 350), "box", 0.0, 0)
    grey = cv2.cvtColor(photo.image, cv2.COLOR_BGR2GRAY)
    assert np.median(grey[:, :40]) < 80  # belt at the frame's edge
    assert np.median(grey[200:340, 400:560]) > np.median(grey[:, :40]) + 40  # cardboard
    b, g, r = photo.image[200:340, 400:560].reshape(-1, 3).mean(axis=0)
    assert r > g > b  # brown


@pytest.mark.parametrize("kind, size, match", [
    ("crate", (400, 300), "unknown parcel kind 'crate'; valid: box, bag"),
    ("box", (0, 300), r"size_mm must be positive, got \(0, 300\)"),
])
def test_sim_photograph_refuses(kind, size, match):
    with pytest.raises(ValueError, match=match):
        SimCamera(SimCameraConfig(), seed=0).photograph("EDG1", size, kind, 0.0, 0)


def write_video(path, frames: list[np.ndarray], fps: float = 10) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG"
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_capture_camera_reads_a_video_file(tmp_path):
    path = tmp_path / "belt.avi"
    frames = [np.full((240, 320, 3), 40 * k, np.uint8) for k in range(4)]
    label = cv2.cvtColor(draw_qr("EDG990000001", module_px=4), cv2.COLOR_GRAY2BGR)
    frames.append(np.full((240, 320, 3), 60, np.uint8))
    frames[-1][20:20 + label.shape[0], 40:40 + label.shape[1]] = label
    write_video(path, frames)
    camera = open_camera(CaptureCameraConfig(source=str(path)))
    assert isinstance(camera, CaptureCamera)
    with camera:
        photos = [camera.grab(t=float(k), encoder=10 * k) for k in range(4)]
        assert [p.image.shape for p in photos] == [(240, 320, 3)] * 4
        assert [p.encoder for p in photos] == [0, 10, 20, 30]
        brightness = [p.image.mean() for p in photos]
        assert brightness == sorted(brightness) and brightness[3] > brightness[0] + 100
        last = camera.photograph(BeltEvent(4.0, 40))  # the next frame, as is
        assert (last.t, last.encoder) == (4.0, 40)
        assert read_label(last.image) == "EDG990000001"
        with pytest.raises(CameraError, match="belt.avi.*gave no frame"):
            camera.grab(5.0, 50)


def test_capture_camera_names_a_missing_source(tmp_path):
    missing = tmp_path / "nope.avi"
    with pytest.raises(CameraError, match="nope.avi.*no such file"):
        CaptureCamera(CaptureCameraConfig(source=str(missing)))


def test_capture_camera_names_an_unreadable_file(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"this is no video")
    with pytest.raises(CameraError, match="junk.avi"):
        CaptureCamera(CaptureCameraConfig(source=str(junk)))
