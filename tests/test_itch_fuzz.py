"Fuzzing the ITCH reader: damaged streams raise ItchFormatError or are skipped past, never anything else."
import gzip, io

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mqbench import itch


def _stream(n=400, seed=1) -> bytes:
    "A valid stream with every message type, fields random within their widths."
    rng = np.random.default_rng(seed)
    tables, seq = {}, rng.permutation(n * len(itch.SPECS))
    for i, (t, spec) in enumerate(itch.SPECS.items()):
        tab = np.zeros(n, itch.DTYPES[t])
        tab["seq"] = seq[i * n:(i + 1) * n]
        for f in spec.fields:
            if f.kind == "a":
                letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ "))
                tab[f.name] = ["".join(rng.choice(letters, f.size)).rstrip() for _ in range(n)]
            else:
                hi = {"ts": 1 << 48, "p8": 1 << 62}.get(f.kind, 1 << min(8 * f.size, 62))
                tab[f.name] = rng.integers(0, hi, n, dtype=np.int64)
        tables[t] = tab
    return itch.encode(tables).tobytes()


GOOD = _stream()


def _mutate(data: bytes, rng) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        op = rng.integers(0, 4)
        j = int(rng.integers(0, max(len(b), 1)))
        if op == 0 and b: b[j % len(b)] = int(rng.integers(0, 256))
        elif op == 1: b[j:j] = rng.integers(0, 256, int(rng.integers(1, 60)), dtype=np.uint8).tobytes()
        elif op == 2: del b[j:j + int(rng.integers(1, 60))]
        else: del b[j:]
    return bytes(b)


def _check(data: bytes, chunk: int):
    total = None
    try:
        total = sum(len(v) for v in itch.read(io.BytesIO(data), chunk_bytes=chunk).values())
    except itch.ItchFormatError as e:
        assert 0 <= e.offset <= len(data) and str(e).startswith("<stream>: byte offset")
    fs = itch.FrameStats()
    skipped = itch.read(io.BytesIO(data), errors="skip", chunk_bytes=chunk, stats=fs)
    assert fs.messages == sum(len(v) for v in skipped.values())
    assert fs.skipped_bytes <= len(data)
    # skip mode passes over damage exactly when raise mode stops at it
    assert (fs.skipped_frames == 0) == (total is not None)
    if total is not None: assert total == fs.messages


def test_random_damage():
    rng = np.random.default_rng(0)
    for _ in range(1500):
        start = int(rng.integers(0, len(GOOD) - 2000))
        _check(_mutate(GOOD[start:start + 2000], rng), int(rng.integers(14, 3000)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(14, 700))
def test_arbitrary_bytes(data, chunk):
    _check(data, chunk)


def test_skip_recovers_everything_after_damage():
    # garbage between two halves of a valid stream: skip mode finds every message of both halves
    cut = 2 + int.from_bytes(GOOD[:2], "big")   # the end of the first frame
    fs = itch.FrameStats()
    whole = itch.read(io.BytesIO(GOOD))
    damaged = GOOD[:cut] + b"\xff" * 37 + GOOD[cut:]
    back = itch.read(io.BytesIO(damaged), errors="skip", stats=fs)
    assert sum(map(len, back.values())) == sum(map(len, whole.values()))
    assert fs.skipped_bytes == 37 and fs.skipped_frames == 1


def test_damaged_gzip(tmp_path):
    p = tmp_path / "day.itch.gz"
    z = gzip.compress(GOOD)
    p.write_bytes(z[: len(z) // 2])
    with pytest.raises(itch.ItchFormatError, match="compressed stream is damaged"):
        itch.read(p)
    bad = bytearray(z); bad[len(z) // 3] ^= 0xFF
    p.write_bytes(bytes(bad))
    with pytest.raises(itch.ItchFormatError):
        itch.read(p)


def test_missing_file(tmp_path):
    with pytest.raises(itch.MqbenchError, match="no such file"):
        itch.read(tmp_path / "nope.itch")


def _book(data: bytes, chunk: int, errors: str, one_pass: bool):
    "(counters, BBO rows, trade rows) of the book engine on `data`, or the error's text: one pass or framed chunks."
    from mqbench.book import BookEngine
    eng, rows = BookEngine(events=True, depth=True, levels=3), {"bbo": 0, "trades": 0, "events": 0, "depth": 0}
    try:
        parts = (eng.stream(io.BytesIO(data), errors=errors, chunk_bytes=chunk) if one_pass else
                 [eng.feed(fr) for fr in itch.iter_frames(io.BytesIO(data), errors=errors, chunk_bytes=chunk,
                                                          stats=eng.frame_stats)] + [eng.finish()])
        for p in parts:
            for k, t in p.items(): rows[k] += len(t)
    except itch.ItchFormatError as e:
        return str(e)
    return eng.counters, rows


def test_book_one_pass_equals_framed_on_damage():
    "The book engine's one-pass replay (framing as it goes) and its replay of framed chunks agree on damaged streams."
    rng = np.random.default_rng(1)
    for _ in range(30):
        start = int(rng.integers(0, len(GOOD) - 3000))
        data, chunk = _mutate(GOOD[start:start + 3000], rng), int(rng.integers(14, 4000))
        for errors in ("raise", "skip"):
            assert _book(data, chunk, errors, True) == _book(data, chunk, errors, False), (errors, chunk)
