"""OHLCV loading/validation/resampling: one parametrised test per bad input, asserting on the message."""

import numpy as np
import pandas as pd
import pytest

from effnet_trading.errors import DataError
from effnet_trading.imaging import last_closed_index, load_ohlcv, parse_timeframe, resample_ohlcv, validate_ohlcv


def _frame(n=50, freq="1min", seed=0):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    idx = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": rng.uniform(1, 5, n)}, index=idx
    )


def _break(kind):
    df = _frame()
    if kind == "unsorted":
        df = df.iloc[[0, 2, 1] + list(range(3, len(df)))]
    elif kind == "duplicate":
        df = pd.concat([df.iloc[:5], df.iloc[[4]], df.iloc[5:]])
    elif kind == "nan":
        df.iloc[7, 3] = np.nan
    elif kind == "inf":
        df.iloc[8, 4] = np.inf
    elif kind == "high_low":
        df.iloc[9, 1] = df.iloc[9, 2] * 0.5
    elif kind == "negative_volume":
        df.iloc[10, 4] = -1.0
    elif kind == "missing_column":
        df = df.drop(columns=["volume"])
    elif kind == "no_time":
        df = df.reset_index(drop=True)
    return df


@pytest.mark.parametrize(
    "kind, message",
    [
        ("unsorted", "not sorted: rows #2"),
        ("duplicate", "1 duplicate timestamp(s): rows #5"),
        ("nan", "NaN/inf in column(s) ['close'] at rows #7"),
        ("inf", "NaN/inf in column(s) ['volume'] at rows #8"),
        ("high_low", "high < max(open, close) or low > min(open, close) at rows #9"),
        ("negative_volume", "negative volume at rows #10"),
        ("missing_column", "missing column(s) ['volume']"),
        ("no_time", "no DatetimeIndex and no timestamp column"),
    ],
)
def test_bad_input_names_row_and_fix(kind, message):
    with pytest.raises(DataError) as exc:
        validate_ohlcv(_break(kind))
    assert message in str(exc.value)


def test_too_short_for_window():
    with pytest.raises(DataError, match="has 50 bars but at least 64 are needed"):
        validate_ohlcv(_frame(), min_bars=64)


def test_repair_sorts_and_dedups_and_reports():
    df = pd.concat([_break("unsorted").iloc[:5], _break("unsorted").iloc[[4]], _break("unsorted").iloc[5:]])
    with pytest.warns(UserWarning, match="repaired"):
        out = validate_ohlcv(df, repair=True)
    assert out.index.is_monotonic_increasing and out.index.is_unique
    assert len(out) == 50
    assert any("sorted" in r for r in out.attrs["repairs"]) and any("duplicate" in r for r in out.attrs["repairs"])


def test_aliases_and_csv_epoch_ms(tmp_path):
    df = _frame()
    raw = df.rename(columns={"open": "Open", "high": "HIGH", "low": "l", "close": "Close", "volume": "vol"})
    raw.insert(0, "time", df.index.as_unit("ns").asi8 // 1_000_000)  # epoch milliseconds
    path = tmp_path / "x.csv"
    raw.to_csv(path, index=False)
    out = load_ohlcv(path)
    assert list(out.columns) == ["open", "high", "low", "close", "volume"]
    assert out.index.tz is not None and str(out.index.tz) == "UTC"
    assert (out.index == df.index).all()
    np.testing.assert_allclose(out.to_numpy(), df.to_numpy())


def test_naive_index_is_utc():
    df = _frame()
    df.index = df.index.tz_localize(None)
    out = validate_ohlcv(df)
    assert str(out.index.tz) == "UTC" and out.index[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_resample_matches_manual_aggregation_and_marks_open_bar():
    df = validate_ohlcv(_frame(n=47))  # 47 one-minute bars: the last 5m bar holds 2 bars only
    out = resample_ohlcv(df, "5m")
    assert len(out) == 10
    first = df.iloc[:5]
    assert out.iloc[0]["open"] == first["open"].iloc[0] and out.iloc[0]["close"] == first["close"].iloc[-1]
    assert out.iloc[0]["high"] == first["high"].max() and out.iloc[0]["low"] == first["low"].min()
    assert np.isclose(out.iloc[0]["volume"], first["volume"].sum())
    assert out["closed"].tolist() == [True] * 9 + [False]


def test_last_closed_index_never_uses_an_unclosed_bar():
    df = validate_ohlcv(_frame(n=30))
    hi = resample_ohlcv(df, "5m")
    decision = df.index + pd.Timedelta("1min")  # end of each base bar
    pos = last_closed_index(hi.index, "5m", decision)
    # at the end of minute 4 (index 4) the first 5m bar has just closed
    assert pos[3] == -1 and pos[4] == 0 and pos[8] == 0 and pos[9] == 1
    ends = hi.index[pos[pos >= 0]] + pd.Timedelta("5min")
    assert (ends <= decision[pos >= 0]).all()


@pytest.mark.parametrize("text, minutes", [("5m", 5), ("15m", 15), ("1h", 60), ("4h", 240), ("1d", 1440)])
def test_parse_timeframe(text, minutes):
    assert parse_timeframe(text) == pd.Timedelta(minutes=minutes)


def test_parse_timeframe_error():
    assert parse_timeframe("250ms") == pd.Timedelta(milliseconds=250)  # sub-second bars from order-book captures
    with pytest.raises(DataError, match="use forms like '250ms', '5m'"):
        parse_timeframe("five minutes")


# -- input read wrongly without a word (issue 11) ------------------------------------------------
def _csv(tmp_path, text, name="x.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


_ROWS = [(100, 101, 99, 100.5, 10), (100.5, 102, 100, 101, 11), (101, 101.5, 100.2, 100.8, 12)]


def _lines(stamps, sep=",", decimal="."):
    rows = [sep.join(["timestamp", "open", "high", "low", "close", "volume"])]
    for ts, vals in zip(stamps, _ROWS):
        rows.append(sep.join([ts, *(str(v).replace(".", decimal) for v in vals)]))
    return "\n".join(rows) + "\n"


def test_ambiguous_day_first_dates_are_refused_with_the_fix(tmp_path):
    path = _csv(tmp_path, _lines(["01/02/2021 13:00", "02/02/2021 13:00", "03/02/2021 13:00"]))
    with pytest.raises(DataError) as exc:
        load_ohlcv(path)
    msg = str(exc.value)
    assert (
        "read both day-first and month-first" in msg
        and "date_format='%d/%m/%Y %H:%M'" in msg
        and "--date-format" in msg
    )
    out = load_ohlcv(path, date_format="%d/%m/%Y %H:%M")
    assert out.index[0] == pd.Timestamp("2021-02-01 13:00", tz="UTC") and out.index[2] == pd.Timestamp(
        "2021-02-03 13:00", tz="UTC"
    )


def test_unambiguous_day_first_dates_are_read_day_first(tmp_path):
    # 13/01 can only be day-first: every row must then be read day-first (12/01 = 12 January)
    out = load_ohlcv(_csv(tmp_path, _lines(["12/01/2021 13:00", "13/01/2021 13:00", "14/01/2021 13:00"])))
    assert list(out.index.strftime("%Y-%m-%d %H:%M")) == ["2021-01-12 13:00", "2021-01-13 13:00", "2021-01-14 13:00"]


def test_separate_date_and_time_columns_are_combined(tmp_path):
    text = "Date,Time,Open,High,Low,Close,Volume\n" + "".join(
        f"2021-03-0{d},{t},{','.join(map(str, r))}\n"
        for (d, t), r in zip([(1, "09:00"), (1, "10:00"), (2, "09:00")], _ROWS)
    )
    out = load_ohlcv(_csv(tmp_path, text))
    assert list(out.index.strftime("%Y-%m-%d %H:%M")) == ["2021-03-01 09:00", "2021-03-01 10:00", "2021-03-02 09:00"]


@pytest.mark.parametrize(
    "extra, message",
    [
        ("Close", "columns 'Close' and 'close' both map to 'close'"),
        ("c", "columns 'c' and 'close' both map to 'close'"),
    ],
)
def test_two_columns_for_one_field(extra, message):
    df = _frame()
    df.insert(0, extra, df["close"])
    with pytest.raises(DataError) as exc:
        validate_ohlcv(df)
    assert message in str(exc.value) and "df.drop(columns=" in str(exc.value)


def test_semicolon_and_decimal_comma_are_sniffed(tmp_path):
    stamps = ["2021-01-01 00:00", "2021-01-01 01:00", "2021-01-01 02:00"]
    out = load_ohlcv(_csv(tmp_path, _lines(stamps, sep=";", decimal=",")))
    np.testing.assert_allclose(out["close"], [100.5, 101, 100.8])
    out = load_ohlcv(_csv(tmp_path, _lines(stamps, sep="\t"), "t.csv"))
    np.testing.assert_allclose(out["volume"], [10, 11, 12])


def test_unclear_separator_names_the_fix(tmp_path):
    path = _csv(tmp_path, "timestamp;open;high;low;close;volume,a,b,c,d\n2021-01-01;1;1;1;1;1,1,1,1,1\n")
    with pytest.raises(DataError, match=r"cannot tell the field separator .* pass sep=';'"):
        load_ohlcv(path)


def test_naive_timestamps_said_once_and_tz_accepted(tmp_path, caplog):
    import logging

    path = _csv(tmp_path, _lines(["2021-01-01 00:00", "2021-01-01 01:00", "2021-01-01 02:00"]))
    with caplog.at_level(logging.WARNING, logger="effnet_trading.imaging.data"):
        out = load_ohlcv(path)
    said = [r for r in caplog.records if "without a time zone: read as UTC" in r.getMessage()]
    assert len(said) == 1 and out.attrs["assumed_utc"] is True
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="effnet_trading.imaging.data"):
        berlin = load_ohlcv(path, tz="Europe/Berlin")
    assert not caplog.records and berlin.attrs["assumed_utc"] is False
    assert berlin.index[0] == pd.Timestamp("2020-12-31 23:00", tz="UTC")  # 00:00 CET = 23:00 UTC
    with pytest.raises(DataError, match="time zone 'Mars/Olympus'"):
        load_ohlcv(path, tz="Mars/Olympus")


def test_time_gaps_reported_not_bridged():
    from effnet_trading.imaging import time_gaps

    df = _frame(n=100, freq="1h")
    df = df.drop(df.index[30:40]).drop(df.index[70:72])  # 10 bars missing, then 2 (not a gap at 3 bars)
    g = time_gaps(validate_ohlcv(df).index)
    assert g["count"] == 1 and g["largest"] == str(pd.Timedelta(hours=11)) and g["missing_bars"] == 10
    assert g["largest_at"] == str(df.index[30]) and g["interval"] == str(pd.Timedelta(hours=1))
    assert time_gaps(validate_ohlcv(_frame(n=50)).index)["count"] == 0


def test_cli_date_format_option(tmp_path):
    from click.testing import CliRunner

    from effnet_trading.plugins.cli import main

    df = _frame(n=40, freq="1h")
    df.index = df.index.strftime("%d/%m/%Y %H:%M")  # 2024-01-01 .. 02: every day <= 12, ambiguous
    path = tmp_path / "dayfirst.csv"
    df.to_csv(path, index_label="timestamp")
    args = [
        "render",
        "--data",
        str(path),
        "--kind",
        "gasf",
        "--window",
        "16",
        "--size",
        "16",
        "--npy",
        str(tmp_path / "x.npy"),
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and "--date-format" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, args + ["--date-format", "%d/%m/%Y %H:%M", "--tz", "UTC"])
    assert res.exit_code == 0, res.output
