"""Labels: Code 128 against the standard, drawn codes read back, nothing read from noise."""

import cv2
import numpy as np
import pytest

from edge.imaging.barcode import draw_code128, draw_qr, encode_code128, read_label
from edge.imaging.code128 import WIDTHS, checksum, decode_runs

PRINTABLE = [chr(c) for c in range(32, 127)]


def random_texts(count: int, seed: int) -> list[str]:
    """Parcel-style IDs and random printable ASCII of 1-20 characters."""
    rng = np.random.default_rng(seed)
    ids = [f"EDG{int(n):09d}" for n in rng.integers(0, 10**9, count // 2)]
    rest = ["".join(rng.choice(PRINTABLE, int(rng.integers(1, 21)))) for _ in range(count // 2)]
    return ids + rest


def bits(modules: np.ndarray) -> str:
    return "".join(map(str, modules))


def runs_of(values: list[int]) -> np.ndarray:
    """Element widths (modules) of the given symbol values, led by a 10-module quiet zone."""
    return np.array([10] + [w for v in values for w in WIDTHS[v]] + [10], np.float64)


@pytest.mark.parametrize("text, expected", [
    # start B 211214, 'A' = value 33 (111323), check (104 + 33) % 103 = 34 (131123), stop 2331112
    ("A", "11010010000" "10100011000" "10001011000" "1100011101011"),
    # start B, ' ' = value 0 (212222), check 104 % 103 = 1 (222122), stop
    (" ", "11010010000" "11011001100" "11001101100" "1100011101011"),
])
def test_encode_code128_matches_the_standard(text, expected):
    assert bits(encode_code128(text)) == expected


@pytest.mark.parametrize("text", ["EDG000000001", "~", "Hello, World! {}|"])
def test_encode_code128_frame(text):
    modules = encode_code128(text)
    assert modules.dtype == np.uint8 and modules.size == 11 * (len(text) + 3) + 2
    assert bits(modules[:11]) == "11010010000" and bits(modules[-13:]) == "1100011101011"


@pytest.mark.parametrize("text, match", [
    ("", "non-empty"),  # nothing to encode
    ("caf\u00e9", "'\u00e9'"),  # beyond ASCII: the error names the character
    ("a\nb", r"'\\n'"),  # control characters are not in code set B
])
def test_encode_code128_refuses(text, match):
    with pytest.raises(ValueError, match=match):
        encode_code128(text)
    with pytest.raises(ValueError, match=match):
        draw_qr(text)


def test_checksum_weights_positions():
    # start B (104) then 'B' (34) and 'A' (33) at positions 1 and 2
    assert checksum([104, 34, 33]) == (104 + 34 + 2 * 33) % 103
    assert checksum([104, 34, 33]) != checksum([104, 33, 34])


def test_decode_runs_reads_code_sets_a_b_and_c():
    # start C, "12", "34", switch to B, "A", switch to A, TAB (value 73 in set A)
    values = [105, 12, 34, 100, 33, 101, 73]
    assert decode_runs(runs_of(values + [checksum(values), 106])) == "1234A\t"


def test_decode_runs_survives_ink_spread_and_refuses_a_bad_checksum():
    runs = runs_of([104, 33, 34, 106]) * 3.0  # "A" with its check value, 3 px per module
    runs[1:-1:2] += 0.8  # bars print fat, spaces thin: the edge-to-edge spans stay put
    runs[2:-1:2] -= 0.8
    assert decode_runs(runs) == "A"
    assert decode_runs(runs_of([104, 33, 35, 106])) is None
    assert decode_runs(runs_of([104, 33, 34, 106])[::-1]) is None  # backwards is the caller's job


@pytest.mark.parametrize("module_px", [1, 2, 4, 6])
def test_draw_code128_geometry_and_read_back(module_px):
    image = draw_code128("EDG000000042", module_px=module_px, height_px=40)
    modules = 11 * 15 + 2 + 20
    assert image.shape == (40 + 10 * module_px, modules * module_px)
    assert (image[:, :10 * module_px] == 255).all() and (image[:, -10 * module_px:] == 255).all()
    assert read_label(image) == "EDG000000042"


def test_draw_qr_has_its_quiet_zone():
    image = draw_qr("EDG000000042", module_px=3)
    assert image.shape[0] == image.shape[1] and image.dtype == np.uint8
    assert (image[:12] == 255).all() and (image[:, :12] == 255).all()  # 4 modules of 3 px
    assert (image[12:15, 12:15] == 0).all()  # the finder pattern's dark corner


def test_labels_round_trip():
    texts = random_texts(40, seed=0)
    for text in texts:
        assert read_label(draw_qr(text, module_px=3)) == text, f"QR {text!r}"
        assert read_label(draw_code128(text, module_px=2, height_px=30)) == text, f"128 {text!r}"


def test_turned_labels_on_grey_read_back():
    rng = np.random.default_rng(1)
    for n, text in enumerate(random_texts(16, seed=1)):
        code = draw_qr(text, 3) if n % 2 else draw_code128(text, 2, 50)
        side = sum(code.shape) + 40
        canvas = np.full((side, side), 90, np.uint8)
        turn = cv2.getRotationMatrix2D((code.shape[1] / 2, code.shape[0] / 2),
                                       rng.uniform(0, 360), 1.0)
        turn[:, 2] += (side - np.array(code.shape[::-1])) / 2
        cv2.warpAffine(code, turn, (side, side), dst=canvas, borderMode=cv2.BORDER_TRANSPARENT)
        colour = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
        assert read_label(colour) == text, f"{text!r} turned"


@pytest.mark.parametrize("image", [
    np.full((200, 300, 3), 255, np.uint8),  # blank paper
    np.zeros((120, 160), np.uint8),  # dark
    np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8),  # sensor noise
    np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8),  # colour noise
    np.tile(np.where(np.arange(480) % 7 < 3, 0, 255).astype(np.uint8), (120, 1)),  # stripes
    np.tile(np.where(np.arange(120) % 4 < 2, 0, 255).astype(np.uint8)[:, None], (1, 90)),
    np.random.default_rng(2).random((64, 64)),  # float image
    np.zeros((8, 8, 4), np.uint8),  # tiny, with alpha
    np.zeros((0, 0), np.uint8),  # empty
])
def test_nothing_to_read(image):
    assert read_label(image) is None
