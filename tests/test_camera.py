"""Labels round-trip through drawing, photographing and reading; real video frames are read."""

import string

import cv2
import numpy as np
import pytest

from edge.config import CaptureCameraConfig, SimCameraConfig
from edge.imaging.barcode import draw_qr, read_label
from edge.scanner.camera import CameraError, CaptureCamera, SimCamera, open_camera


@pytest.mark.parametrize("text", ["EDG000000001", "EDG991234567", "P-42", "x" * 20])
def test_qr_round_trip(text):
    assert read_label(draw_qr(text, module_px=4)) == text


def test_qr_round_trip_random_printable():
    rng = np.random.default_rng(0)
    alphabet = list(string.ascii_letters + string.digits + "-_/.")
    for _ in range(20):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(1, 21))))
        assert read_label(draw_qr(text, module_px=3)) == text


def test_nothing_to_read():
    assert read_label(np.full((200, 300, 3), 255, np.uint8)) is None
    noise = np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8)
    assert read_label(noise) is None
    with pytest.raises(ValueError, match="non-empty"):
        draw_qr("")


def test_sim_photos_carry_readable_labels():
    camera = SimCamera(SimCameraConfig(), seed=3)
    rng = np.random.default_rng(1)
    ids = [f"EDG03{n:07d}" for n in range(30)]
    read = 0
    for n, parcel_id in enumerate(ids):
        size = (rng.uniform(220, 800), rng.uniform(160, 600))
        photo = camera.photograph(parcel_id, size, "box" if n % 3 else "bag", 1.0, 100)
        assert photo.image.shape == (1080, 1920, 3) and photo.encoder == 100
        read += read_label(photo.image) == parcel_id
    assert read / len(ids) >= 0.9, f"decoded {read} of {len(ids)}"
    again = SimCamera(SimCameraConfig(), seed=3).photograph(ids[0], (400, 300), "box", 1.0, 100)
    first = SimCamera(SimCameraConfig(), seed=3).photograph(ids[0], (400, 300), "box", 1.0, 100)
    np.testing.assert_array_equal(again.image, first.image)


def test_capture_camera_reads_a_real_video_file(tmp_path):
    path = tmp_path / "belt.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for k in range(5):
        frame = np.full((240, 320, 3), 40 * k, np.uint8)
        writer.write(frame)
    writer.release()
    camera = open_camera(CaptureCameraConfig(source=str(path)))
    photos = [camera.grab(t=float(k), encoder=k) for k in range(5)]
    assert [p.image.shape for p in photos] == [(240, 320, 3)] * 5
    assert photos[4].image.mean() > photos[1].image.mean()
    with pytest.raises(CameraError, match="gave no frame"):
        camera.grab(5.0, 5)
    camera.close()


def test_capture_camera_missing_source(tmp_path):
    with pytest.raises(CameraError, match="nope.avi"):
        CaptureCamera(CaptureCameraConfig(source=str(tmp_path / "nope.avi")))
