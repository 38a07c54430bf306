"""Order-book heatmap from a Binance depth capture (hftbacktest format) -> PNG.

    python examples/lob_heatmap.py [CAPTURE.gz] [OUT.png]

Rebuilds the book (REST snapshot + depth diffs), samples it once a second with 20 levels
per side, and renders the last 64 seconds as a 64x64 heatmap: rows are 0.05 bp price
buckets around the mid at the last snapshot, channel 0 bids, channel 1 asks (drawn side by side).
"""

from __future__ import annotations

import sys

from effnet_trading.imaging import ImageSpec, read_binance_depth, render_lob, to_png

CAPTURE = "/work/shared/data/lob/hftbacktest_binance_spot_btcusdt_20240808.gz"


def main(capture: str = CAPTURE, out: str = "lob_heatmap.png") -> None:
    book = read_binance_depth(capture, levels=20, every_ms=1000)
    spec = ImageSpec("lob_heatmap", window=64, size=64, levels=20, bucket_bps=0.05)
    images = render_lob(spec, book)
    print(f"{len(book)} snapshots -> images {images.shape}; last at {book.timestamps[-1]}")
    to_png(spec, out, book, end=-1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
