"""Code 128 symbology: encode text to bar modules, decode measured bar/space widths to text.

Pure NumPy, no images. A symbol is six elements (bar, space, bar, space, bar, space) of 1-4
modules, 11 modules in all; the stop symbol adds a final 2-module bar (13 modules).
The encoder writes code set B (printable ASCII 32-126); the decoder reads code sets A, B and C
so that it also reads real labels, which often switch to set C for runs of digits.

Decoding measures each symbol by its four edge-to-similar-edge distances (bar start to next bar
start, space start to next space start), which do not change when every bar grows or shrinks
by the same amount: that is what blur plus a biased threshold does to a photographed code.
"""

from __future__ import annotations

import numpy as np

# Element widths of symbol values 0-105 and of the stop symbol (106), from the Code 128 standard.
_TABLE = """
212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 221312 231212 112232
122132 122231 113222 123122 123221 223211 221132 221231 213212 223112 312131 311222 321122
321221 312212 322112 322211 212123 212321 232121 111323 131123 131321 112313 132113 132311
211313 231113 231311 112133 112331 132131 113123 113321 133121 313121 211331 231131 213113
213311 213131 311123 311321 331121 312113 312311 332111 314111 221411 431111 111224 111422
121124 121421 141122 141221 112214 112412 122114 122411 142112 142211 241211 221114 413111
241112 134111 111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 214121
412121 111143 111341 131141 114113 114311 411113 411311 113141 114131 311141 411131 211412
211214 211232 2331112
"""
WIDTHS = [tuple(int(c) for c in word) for word in _TABLE.split()]
START_A, START_B, START_C, STOP = 103, 104, 105, 106
SHIFT, CODE_C, CODE_B, CODE_A, FNC1 = 98, 99, 100, 101, 102
QUIET_MODULES = 10  # the standard's minimum quiet zone each side

_SIX = np.array([w[:6] for w in WIDTHS], np.float32)  # [107, 6] modules
_EDGE_SPANS = _SIX[:, :4] + _SIX[:, 1:5]  # [107, 4] edge-to-similar-edge distances, modules
# Quiet zone, start, one character, check and stop: the fewest runs a scan of a code can hold.
MIN_RUNS = 1 + 3 * 6 + 7
MAX_SPAN_ERROR = 0.6  # modules; an edge-to-similar-edge distance further off is not that symbol


def check_text(text: str) -> None:
    """Raise ValueError unless ``text`` can be written in code set B."""
    if not text:
        raise ValueError("a label needs a non-empty text")
    bad = [c for c in text if not 32 <= ord(c) <= 126]
    if bad:
        raise ValueError(f"Code 128 set B holds printable ASCII (32-126) only, got {bad[0]!r} "
                         f"in {text!r}")


def checksum(values: list[int]) -> int:
    """Modulo-103 check value of a start value followed by data values."""
    return (values[0] + sum(k * v for k, v in enumerate(values[1:], start=1))) % 103


def encode_code128(text: str) -> np.ndarray:
    """uint8 ``[11 * (len(text) + 3) + 2]`` modules of ``text`` in code set B, 1 = bar, 0 = space,
    start to stop; quiet zones are left to the caller."""
    check_text(text)
    values = [START_B] + [ord(c) - 32 for c in text]
    values += [checksum(values), STOP]
    widths = np.array([w for v in values for w in WIDTHS[v]], np.int64)
    colours = np.arange(widths.size) % 2 == 0  # every symbol starts with a bar
    return np.repeat(colours, widths).astype(np.uint8)


def match_symbols(runs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best symbol for every window of six consecutive runs.

    runs: float ``[n]`` element widths in px, any unit. Returns, per window start ``[n - 5]``:
    symbol value, worst edge-span error in modules, and the window's width in px.
    """
    if runs.size < 6:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty
    windows = np.lib.stride_tricks.sliding_window_view(runs, 6)
    width = windows.sum(axis=1)
    spans = (windows[:, :4] + windows[:, 1:5]) * (11.0 / width[:, None])
    error = np.abs(spans[:, None, :] - _EDGE_SPANS[None]).max(axis=2)  # [windows, 107]
    value = error.argmin(axis=1)
    return value, error[np.arange(value.size), value], width


def decode_runs(runs: np.ndarray) -> str | None:
    """Text of the first complete Code 128 symbol in ``runs`` read forwards, or None.

    runs: float ``[n]`` alternating element widths in px, ``runs[0]`` a space (the light run
    before the first bar; it may be 0 where the scan starts on a bar).
    """
    runs = np.asarray(runs, np.float64)
    if runs.size < MIN_RUNS:
        return None
    value, error, width = match_symbols(runs)
    good = error < MAX_SPAN_ERROR
    starts = good[1::2] & np.isin(value[1::2], (START_A, START_B, START_C))
    for i in 2 * np.flatnonzero(starts) + 1:
        # The standard asks for 10 light modules before the start; accept 6 of them.
        quiet = runs[i - 1] >= 6 * width[i] / 11
        values = _walk(value, good, width, i) if quiet else None
        text = _to_text(values) if values else None
        if text is not None:
            return text
    return None


def _walk(value: np.ndarray, good: np.ndarray, width: np.ndarray, i: int) -> list[int] | None:
    """Symbol values from the start symbol at run ``i`` up to the stop, checksum verified."""
    values = []
    for j in range(i, value.size, 6):
        # The module size stays put along one code; a jump means we wandered off it.
        if not good[j] or abs(width[j] - width[i]) > 0.25 * width[i]:
            return None
        if value[j] == STOP:
            ok = len(values) >= 3 and checksum(values[:-1]) == values[-1]
            return values[:-1] if ok else None
        values.append(int(value[j]))
    return None


def _to_text(values: list[int]) -> str | None:
    """Text of start + data values, following code set switches and shifts."""
    sets = {START_A: "A", START_B: "B", START_C: "C"}
    current = sets.get(values[0])
    out, shift = [], False
    for v in values[1:]:
        active = {"A": "B", "B": "A"}[current] if shift else current
        shift = False
        if v >= START_A:
            return None  # a start symbol inside the data is no valid code
        if active == "C" and v < 100:
            out.append(f"{v:02d}")
        elif v < 96 and active in "AB":
            out.append(chr(v + 32) if active == "B" or v < 64 else chr(v - 64))
        elif v == SHIFT and current != "C":
            shift = True
        elif v in (CODE_A, CODE_B, CODE_C) and {CODE_A: "A", CODE_B: "B", CODE_C: "C"}[v] \
                != current:
            current = {CODE_A: "A", CODE_B: "B", CODE_C: "C"}[v]
        # FNC1-4 carry no characters of their own.
    return "".join(out) or None
