"""History download against the loopback fake Bybit: pagination, open candle, retries, resume."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from effnet_trading.errors import AuthError, RateLimitError
from effnet_trading.imaging import load_ohlcv
from effnet_trading.plugins.bybit import BybitREST, RetryPolicy, fetch_klines, resolve_endpoints
from effnet_trading.plugins.bybit.fake_exchange import Faults
from effnet_trading.plugins.cli import main

N = 2500  # 3 pages of <= 1000 rows


@pytest.fixture
def source(planted):
    return planted.iloc[: N + 10]


def _rest(fake, total_s=5.0):
    return BybitREST(
        resolve_endpoints("mainnet", fake.rest_url, fake.ws_url),
        retry=RetryPolicy(base_s=0.01, cap_s=0.05, total_s=total_s),
    )


def _check_equal(path, expected: pd.DataFrame):
    got = load_ohlcv(path)
    assert got.index.equals(expected.index)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


def test_fetch_paginates_and_drops_the_open_candle(fake_bybit, source, tmp_path):
    fake = fake_bybit(source, start_index=N)  # the exchange clock is mid-way through bar N
    res = fetch_klines(_rest(fake), "BTCUSDT", "linear", "5", source.index[0], source.index[-1], tmp_path / "k.csv")
    _check_equal(res.path, source.iloc[:N])  # bar N is still open: left out although inside the range
    assert res.dropped_open and res.pages == 3 and res.new_bars == N
    kline_calls = [p for p in fake.state.requests if p == "/v5/market/kline"]
    assert len(kline_calls) == 3


def test_fetch_end_is_exclusive_and_start_inclusive(fake_bybit, source, tmp_path):
    fake = fake_bybit(source, start_index=N)
    res = fetch_klines(_rest(fake), "BTCUSDT", "linear", "5", source.index[10], source.index[20], tmp_path / "k.csv")
    _check_equal(res.path, source.iloc[10:20])
    assert not res.dropped_open


def test_fetch_retries_rate_limits_and_resets(fake_bybit, source, tmp_path):
    faults = Faults(
        rest=[
            ("kline", "http429"),
            ("kline", "ret10006"),
            ("kline", "http403"),
            ("kline", "reset"),
            ("time", "ret10016"),
        ]
    )
    fake = fake_bybit(source, start_index=N, faults=faults)
    rest = _rest(fake)
    res = fetch_klines(rest, "BTCUSDT", "linear", "5", source.index[0], source.index[-1], tmp_path / "k.csv")
    _check_equal(res.path, source.iloc[:N])
    assert rest.retries == 5 and not faults.rest


def test_retry_total_time_is_bounded(fake_bybit, source, tmp_path):
    fake = fake_bybit(source, start_index=N, faults=Faults(rest=[("kline", "ret10006")] * 1000))
    t0 = time.monotonic()
    with pytest.raises(RateLimitError, match=r"Gave up after \d+ attempt\(s\).*retry budget 0.3 s"):
        fetch_klines(
            _rest(fake, total_s=0.3), "BTCUSDT", "linear", "5", source.index[0], source.index[-1], tmp_path / "k.csv"
        )
    assert time.monotonic() - t0 < 2.0


def test_auth_errors_are_not_retried(fake_bybit, source, tmp_path):
    fake = fake_bybit(source, start_index=N, faults=Faults(rest=[("kline", "ret10003"), ("kline", "ret10003")]))
    rest = _rest(fake)
    with pytest.raises(AuthError, match="BYBIT_API_KEY"):
        fetch_klines(rest, "BTCUSDT", "linear", "5", source.index[0], source.index[-1], tmp_path / "k.csv")
    assert rest.retries == 0 and len(fake.faults.rest) == 1


def test_interrupted_download_resumes_without_loss_or_duplicates(fake_bybit, source, tmp_path):
    # page 2 fails hard (a non-transient answer): the file keeps page 1 only
    fake = fake_bybit(source, start_index=N, faults=Faults(rest=[("kline", "ok"), ("kline", "ret10001")]))
    out = tmp_path / "k.csv"
    with pytest.raises(Exception, match="10001"):
        fetch_klines(_rest(fake), "BTCUSDT", "linear", "5", source.index[0], source.index[-1], out)
    assert len(load_ohlcv(out)) == 1000
    with open(out, "a") as fh:  # a crash mid-write leaves a partial line behind
        fh.write("2021-01-04T11:")
    res = fetch_klines(_rest(fake), "BTCUSDT", "linear", "5", source.index[0], source.index[-1], out)
    _check_equal(out, source.iloc[:N])
    assert res.resumed_from == source.index[999] and res.new_bars == N - 1000


def test_fetch_cli_against_the_fake(fake_bybit, source, tmp_path):
    fake = fake_bybit(source, start_index=300)
    out = tmp_path / "sub" / "btc.csv"
    r = CliRunner().invoke(
        main,
        [
            "fetch",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "5",
            "--start",
            str(source.index[0]),
            "--end",
            "2030-01-01",
            "--out",
            str(out),
            "--rest-url",
            fake.rest_url,
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "300 bars" in r.output and "still-open candle left out" in r.output
    _check_equal(out, source.iloc[:300])


def test_fetch_cli_reports_bad_interval_and_range(tmp_path):
    r = CliRunner().invoke(
        main,
        [
            "fetch",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "7",
            "--start",
            "2024-01-01",
            "--end",
            "2024-02-01",
            "--out",
            str(tmp_path / "x.csv"),
        ],
    )
    assert r.exit_code != 0 and "'7' is not one of" in r.output
    r = CliRunner().invoke(
        main,
        [
            "fetch",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "5",
            "--start",
            "2024-02-01",
            "--end",
            "2024-01-01",
            "--out",
            str(tmp_path / "x.csv"),
            "--rest-url",
            "http://127.0.0.1:9",
        ],
    )
    assert r.exit_code != 0 and "is not after --start" in r.output


def test_endpoints_precedence():
    env = {"EFFNET_BYBIT_REST_URL": "http://127.0.0.1:1", "EFFNET_BYBIT_WS_URL": "ws://127.0.0.1:2"}
    ep = resolve_endpoints("testnet", env=env)
    assert (ep.rest, ep.public_ws("spot")) == ("http://127.0.0.1:1", "ws://127.0.0.1:2/v5/public/spot")
    ep = resolve_endpoints("testnet", rest_url="http://h:3/", env=env)
    assert ep.rest == "http://h:3" and ep.network == "custom(testnet)"
    ep = resolve_endpoints("demo", env={})
    assert ep.rest == "https://api-demo.bybit.com" and ep.network == "demo" and ep.private_ws.endswith("/v5/private")
    with pytest.raises(Exception, match="must start with http"):
        resolve_endpoints("mainnet", rest_url="127.0.0.1:8080", env={})


def test_package_imports_without_live_extras_or_torch():
    import subprocess
    import sys

    code = (
        "import sys, logging; import effnet_trading.plugins.bybit; "
        "bad = [m for m in ('pybit', 'websockets', 'backtrader', 'torch') if m in sys.modules]; "
        "assert not bad, bad; assert not logging.getLogger().handlers; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
