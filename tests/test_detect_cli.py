"""``edge detect`` on image files, end to end through a real ONNX graph with a planted box."""

import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from test_model import SIZE, planted_head, write_model

import edge.detect.files
from edge.cli import main
from edge.detect.files import ScanReadError, image_size, read_scan

# One gun, stride 16 cell (1, 2), +-1.5 strides: [0, 16, 48, 64] in model-input pixels.
PLANTED_INPUT_BOX = np.array([0, 16, 48, 64], np.float64)
PLANTED_SCORE = round(1 / (1 + np.exp(-6.0)), 3)  # the planted logit is 6


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("model") / "m.onnx",
                       planted_head([(16, 1, 2, 0, 1.5)]))


def expected_box(height: int, width: int) -> np.ndarray:
    """The planted box in an image's own pixels: letterboxed at the top left, then clipped."""
    scale = min(SIZE[0] / height, SIZE[1] / width)
    return np.clip(PLANTED_INPUT_BOX / scale, 0, [width, height, width, height])


def scan(height: int, width: int, dtype=np.uint8, channels: int = 1) -> np.ndarray:
    white = np.iinfo(dtype).max
    image = np.full((height, width, channels), white, dtype).squeeze(axis=2) if channels == 1 \
        else np.full((height, width, channels), white, dtype)
    image[height // 3:height // 2, width // 4:width // 2] = white // 5  # a dense object
    return image


# name, image; each shape letterboxes (width <= 1.25 height), so one box comes back
GOOD = [
    ("grey8.png", scan(128, 128)),
    ("colour.jpg", scan(100, 120, channels=3)),
    ("grey16.tif", scan(200, 160, np.uint16)),
    ("large.png", scan(2200, 2700)),
]


def run_detect(capsys, *args) -> tuple[int, list[str], str]:
    code = main(["detect", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def write_good(folder):
    paths = []
    for name, image in GOOD:
        assert cv2.imwrite(str(folder / name), image)
        paths.append(folder / name)
    return paths


def test_json_results_per_file_and_a_corrupt_file_does_not_stop_the_run(tmp_path, model,
                                                                        capsys):
    good = write_good(tmp_path)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    paths = [*good[:2], corrupt, *good[2:]]
    code, lines, _ = run_detect(capsys, "--json", "--model", model, *paths)
    assert code == 1  # one file failed, yet all were processed
    results = [json.loads(line) for line in lines]
    assert [r["image"] for r in results] == [str(p) for p in paths]
    assert results[2] == {"image": str(corrupt), "error": results[2]["error"]}
    assert str(corrupt) in results[2]["error"] and "not a readable image" in results[2]["error"]
    for result, (_, image) in zip([*results[:2], *results[3:]], GOOD, strict=True):
        height, width = image.shape[:2]
        (found,) = result["detections"]
        assert found["label"] == "gun" and found["score"] == PLANTED_SCORE
        box = np.array(found["box"])
        assert box.tolist() == [round(v, 1) for v in box.tolist()]
        np.testing.assert_allclose(box, expected_box(height, width), atol=0.051)
        assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height


def test_large_scan_boxes_are_in_its_own_pixels(tmp_path, model, capsys):
    path = write_good(tmp_path)[3]
    code, lines, _ = run_detect(capsys, "--json", "--model", model, path)
    assert code == 0
    # scale 64/2700: x2 = 48 / scale = 2025; y2 = 64 / scale = 2700 is clipped to the height
    assert json.loads(lines[0])["detections"][0]["box"] == [0.0, 675.0, 2025.0, 2200.0]


def test_readable_lines_and_the_score_threshold(tmp_path, model, capsys):
    grey = write_good(tmp_path)[0]
    missing = tmp_path / "missing.png"
    code, lines, _ = run_detect(capsys, "--model", model, grey, missing)
    assert code == 1
    assert lines == [f"{grey}: 1 detection: gun {PLANTED_SCORE:.2f} at [0, 32, 96, 128]",
                     f"{missing}: error: no such file"]
    code, lines, _ = run_detect(capsys, "--model", model, "--conf", "0.999", grey)
    assert code == 0 and lines == [f"{grey}: no detections"]


def test_missing_model_says_how_to_get_one(tmp_path, capsys, monkeypatch):
    image = write_good(tmp_path)[0]
    monkeypatch.setenv("EDGE_DETECTOR__MODEL", str(tmp_path / "models" / "x.onnx"))
    code, lines, err = run_detect(capsys, image)
    assert code == 2 and not lines
    assert str(tmp_path / "models" / "x.onnx") in err and "make train" in err
    monkeypatch.delenv("EDGE_DETECTOR__MODEL")
    config = tmp_path / "none.yaml"
    config.write_text("detector:\n  model: null\n")
    code = main(["--config", str(config), "detect", str(image)])
    err = capsys.readouterr().err
    assert code == 2 and "no model is configured" in err and "make train" in err
    code, _, err = run_detect(capsys, "--model", tmp_path / "other.onnx", image)
    assert code == 2 and "other.onnx does not exist" in err


def test_the_shipped_model_is_the_default(tmp_path, capsys, monkeypatch):
    from edge.config import SHIPPED_MODEL, EdgeConfig
    from edge.detect.model import Detector
    from simulator.phantoms import THREAT_CLASSES

    monkeypatch.delenv("EDGE_DETECTOR__MODEL", raising=False)
    assert EdgeConfig().detector.model == SHIPPED_MODEL and SHIPPED_MODEL.is_file()
    assert (SHIPPED_MODEL.parent / "CARD.md").is_file()
    det = Detector(SHIPPED_MODEL, threads=1)
    assert det.info.classes == tuple(THREAT_CLASSES) and det.info.pixels
    image = np.full((500, 900), 235, np.uint8)   # a grey scan: a dense bar on a light parcel
    image[200:260, 300:600] = 30
    cv2.imwrite(str(tmp_path / "scan.png"), image)
    code, lines, _ = run_detect(capsys, "--json", "--conf", "0.01", tmp_path / "scan.png")
    assert code == 0 and len(lines) == 1
    result = json.loads(lines[0])
    for d in result["detections"]:
        assert d["label"] in THREAT_CLASSES and 0.01 <= d["score"] <= 1
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 <= x2 <= 900 and 0 <= y1 <= y2 <= 500


def test_conf_must_be_a_probability(capsys):
    with pytest.raises(SystemExit):
        main(["detect", "--conf", "1.5", "x.png"])
    assert "must be between 0 and 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "image", "shape", "dtype"),
    [
        ("g.png", scan(20, 30), (20, 30), np.uint8),  # grey stays 2D
        ("g16.png", scan(20, 30, np.uint16), (20, 30), np.uint16),  # 16 bit stays 16 bit
        ("c.tiff", scan(20, 30, np.uint16, 3), (20, 30, 3), np.uint16),
        ("c.jpeg", scan(20, 30, channels=3), (20, 30, 3), np.uint8),
    ],
)
def test_read_scan_keeps_depth_and_channels(tmp_path, name, image, shape, dtype):
    cv2.imwrite(str(tmp_path / name), image)
    read = read_scan(tmp_path / name)
    assert read.shape == shape and read.dtype == dtype


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),  # nothing written
        ("folder", "a directory, not an image file"),
        (b"", "not a readable image"),  # empty file
        (b"GIF89a not really", "not a readable image"),  # garbage
    ],
)
def test_read_scan_refuses_what_it_cannot_read(tmp_path, content, message):
    path = tmp_path / "scan.png"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ScanReadError, match=message):
        read_scan(path)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG: about 50 KB on disk for 20,000 x 20,000 px, which OpenCV
    decodes into a 400 MB 8-bit image."""
    packer, row = zlib.compressobj(9), bytes(1 + (width + 7) // 8)  # filter byte, then bits
    rows_per_piece = 1000
    idat = b"".join(packer.compress(row * min(rows_per_piece, height - done))
                    for done in range(0, height, rows_per_piece)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + \
        png_chunk(b"IEND", b"")


@pytest.fixture
def decodes(monkeypatch) -> list[int]:
    """The byte counts of the files the decoder was handed, in order."""
    calls, real = [], edge.detect.files._quiet_decode

    def counted(data):
        calls.append(data.size)
        return real(data)

    monkeypatch.setattr(edge.detect.files, "_quiet_decode", counted)
    return calls


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, model, capsys, decodes):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png(20_000, 20_000))
    good = write_good(tmp_path)[:2]
    code, lines, _ = run_detect(capsys, "--json", "--model", model, good[0], bomb, good[1])
    assert code == 1
    results = [json.loads(line) for line in lines]
    assert [r["image"] for r in results] == [str(good[0]), str(bomb), str(good[1])]
    assert "detections" in results[0] and "detections" in results[2]
    error = results[1]["error"]
    assert str(bomb) in error and "20000 x 20000 = 400,000,000 pixels" in error
    assert "limit of 100,000,000" in error and "detector.max_image_pixels" in error
    assert bomb.stat().st_size not in decodes and len(decodes) == 2  # the bomb never decoded


@pytest.mark.parametrize("name", [name for name, _ in GOOD[:3]])  # PNG, JPEG, TIFF
def test_pixel_limit_holds_for_every_format(tmp_path, name, decodes):
    path = write_good(tmp_path)[[n for n, _ in GOOD].index(name)]
    height, width = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2]
    with pytest.raises(ScanReadError, match=f"{width} x {height} = .* above the limit of 100"):
        read_scan(path, max_pixels=100)
    assert not decodes
    assert read_scan(path, max_pixels=width * height).shape[:2] == (height, width)


def tiff_header(order: str, width: int, height: int, big: bool = False) -> bytes:
    """A TIFF (or BigTIFF) header whose only IFD holds width (LONG) and height (SHORT)."""
    mark = b"II" if order == "<" else b"MM"
    if big:
        head = mark + struct.pack(order + "HHHQ", 43, 8, 0, 16)
        entries = struct.pack(order + "HHQQ", 256, 4, 1, width) + \
            struct.pack(order + "HHQH6x", 257, 3, 1, height)
        return head + struct.pack(order + "Q", 2) + entries
    head = mark + struct.pack(order + "HI", 42, 8)
    entries = struct.pack(order + "HHII", 256, 4, 1, width) + \
        struct.pack(order + "HHIH2x", 257, 3, 1, height)
    return head + struct.pack(order + "H", 2) + entries


def encoded(suffix: str, image: np.ndarray, *params: int) -> bytes:
    ok, data = cv2.imencode(suffix, image, list(params))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (encoded(".png", scan(30, 40)), (40, 30)),
        (encoded(".png", scan(31, 41, np.uint16, 3)), (41, 31)),
        (encoded(".jpg", scan(32, 42, channels=3)), (42, 32)),
        (encoded(".jpg", scan(33, 43), cv2.IMWRITE_JPEG_PROGRESSIVE, 1), (43, 33)),
        (encoded(".tif", scan(34, 44, np.uint16)), (44, 34)),
        (encoded(".tif", scan(35, 45, channels=3), cv2.IMWRITE_TIFF_COMPRESSION, 1), (45, 35)),
        (tiff_header(">", 70_000, 300), (70_000, 300)),  # big-endian
        (tiff_header("<", 70_000, 300, big=True), (70_000, 300)),  # BigTIFF
        (bomb_png(20_000, 10), (20_000, 10)),
        # damaged or foreign headers: no size, so nothing is decoded
        (b"", None),
        (b"GIF89a not really", None),
        (b"\x89PNG\r\n\x1a\n\x00\x00", None),  # ends inside the first chunk
        (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IDAT", bytes(13)), None),  # IHDR missing
        (b"\xff\xd8\xff\xda\x00\x02", None),  # JPEG scan data before any frame header
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", None),  # JPEG cut short
        (tiff_header("<", 0, 300), None),  # zero width
        (b"II\x2b\x00" + bytes(4), None),  # BigTIFF cut short
        (b"II\x07\x00" + bytes(12), None),  # not a TIFF version
    ],
)
def test_image_size_reads_only_the_header(data, size):
    assert image_size(data) == size


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        # scans directly inside, by name; other files and subfolders left alone
        (["b.png", "a.jpg", "c.TIF", "notes.txt", "sub/d.png"], ["a.jpg", "b.png", "c.TIF"]),
        ([], None),
        (["notes.txt", "sub/d.png"], None),
    ],
)
def test_a_folder_stands_for_the_scans_inside_it(tmp_path, model, capsys, names, expected):
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    for name in names:
        if name.endswith(".txt"):
            (folder / name).write_text("not a scan")
        else:
            assert cv2.imwrite(str(folder / name), scan(64, 64))
    code, lines, _ = run_detect(capsys, "--json", "--model", model, folder)
    results = [json.loads(line) for line in lines]
    if expected is None:
        assert code == 1 and len(results) == 1 and results[0]["image"] == str(folder)
        assert results[0]["error"] == f"{folder}: a directory with no scan files (.png, .jpg, " \
            ".jpeg, .tif, .tiff) directly inside"
    else:
        assert code == 0 and [r["image"] for r in results] == [str(folder / n) for n in expected]
        assert all(len(r["detections"]) == 1 for r in results)
