"""BybitBroker, keys and the kill switch against the loopback fake Bybit (signed requests, no network)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pandas as pd
import pytest
from _helpers import live_args
from click.testing import CliRunner

from effnet_trading.errors import AuthError, ExchangeError, SpecError
from effnet_trading.plugins.bybit import Bar, BybitREST, RetryPolicy, resolve_endpoints
from effnet_trading.plugins.bybit.broker import BybitBroker, round_to_step
from effnet_trading.plugins.bybit.credentials import load_credentials
from effnet_trading.plugins.bybit.fake_exchange import Faults
from effnet_trading.plugins.bybit.killswitch import KillSwitch
from effnet_trading.plugins.cli import main

KEY, SECRET = "KEY-7f3a9c1e5d", "SECRET-b2d4f6a8c0e1"


def _rest(fake, key=KEY, secret=SECRET, timeout_s=10.0):
    ep = resolve_endpoints("testnet", fake.rest_url, fake.ws_url)
    return BybitREST(
        ep, api_key=key, api_secret=secret, timeout_s=timeout_s, retry=RetryPolicy(base_s=0.01, cap_s=0.05, total_s=5.0)
    )


def _bar(fake, i):
    row = fake.state.values[i]
    return Bar(int(fake.state.starts[i]), *row)


def test_round_to_step_is_exact():
    assert round_to_step(1.23456, "0.001") == "1.234"
    assert round_to_step(0.0999999, "0.01") == "0.09"
    assert round_to_step(101.26, "0.5", rounding=__import__("decimal").ROUND_HALF_UP) == "101.5"


def test_reconcile_reads_position_and_open_orders(fake_bybit, planted):
    fake = fake_bybit(planted.iloc[:50], start_index=40, api_key=KEY, api_secret=SECRET)
    fake.position = -0.25
    fake.open_orders.append({"orderId": "old", "orderLinkId": "stale-1"})
    broker = BybitBroker(_rest(fake), "BTCUSDT", capital=1_000.0)
    assert broker.units == -0.25 and len(broker.open_orders) == 1 and broker.qty_step == "0.001"


def test_order_timeout_after_accept_is_not_doubled(fake_bybit, planted):
    fake = fake_bybit(
        planted.iloc[:50],
        start_index=40,
        api_key=KEY,
        api_secret=SECRET,
        faults=Faults(rest=[("order/create", "timeout")]),
    )
    broker = BybitBroker(_rest(fake, timeout_s=0.3), "BTCUSDT", capital=1_000.0)
    broker.on_bar(_bar(fake, 39))
    order = broker.submit(
        pd.Timestamp(int(fake.state.starts[39]), unit="ms", tz="UTC"), "BTCUSDT", 0.5, "effnet-BTCUSDT-1"
    )
    assert order.status == "submitted"
    assert fake.order_requests == 2 and len(fake.orders) == 1  # the retry was answered "duplicate"
    expect = float(round_to_step(0.5 * 1_000.0 / fake.state.values[39][3], "0.001"))
    assert fake.position == pytest.approx(expect) and broker.units == pytest.approx(expect)
    (fill,) = broker.fills
    assert (
        fill.via == "exchange" and fill.price == fake.state.values[40][0]
    )  # filled at the open of the bar in progress
    # the same decision sent again (a restarted process) is refused by id: still one order
    broker.submit(order.time, "BTCUSDT", 0.5, "effnet-BTCUSDT-1")
    assert len(fake.orders) == 1 and fake.position == pytest.approx(expect)


def test_small_orders_are_skipped_and_bad_keys_fail_without_leaking(fake_bybit, planted):
    fake = fake_bybit(planted.iloc[:50], start_index=40, api_key=KEY, api_secret=SECRET)
    broker = BybitBroker(_rest(fake), "BTCUSDT", capital=0.05)
    broker.on_bar(_bar(fake, 39))
    assert (
        broker.submit(pd.Timestamp(0, tz="UTC"), "BTCUSDT", 1.0, "x").status.startswith("skipped") and not fake.orders
    )
    with pytest.raises(AuthError, match="retCode 10004") as err:
        BybitBroker(_rest(fake, secret="WRONG-" + SECRET), "BTCUSDT", capital=1.0)
    assert SECRET not in str(err.value) and KEY not in str(err.value)


def test_credentials_from_env_or_file_are_redacted(tmp_path):
    c = load_credentials(env={"BYBIT_API_KEY": KEY, "BYBIT_API_SECRET": SECRET})
    assert (c.api_key, c.api_secret) == (KEY, SECRET) and KEY not in repr(c) and SECRET not in str(c)
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"api_key": KEY, "api_secret": SECRET}))
    assert load_credentials(f).api_secret == SECRET
    (tmp_path / "two").write_text(f"{KEY}\n{SECRET}\n")
    assert load_credentials(tmp_path / "two").api_key == KEY
    with pytest.raises(AuthError, match="BYBIT_API_SECRET not set"):
        load_credentials(env={"BYBIT_API_KEY": KEY})


def test_kill_switch_rules():
    k = KillSwitch(max_position=1.0, max_daily_loss=0.05, max_orders_per_hour=2)
    t = pd.Timestamp("2024-01-01 00:00", tz="UTC")
    assert k.check(t, equity=1000, capital=1000, position_value=900, ordered=True) is None
    assert "max_position" in k.check(t, equity=1000, capital=1000, position_value=1100, ordered=False)
    assert "daily loss" in k.check(t + pd.Timedelta("5min"), equity=940, capital=1000, position_value=0, ordered=False)
    k2 = KillSwitch(max_orders_per_hour=2)
    for m in range(3):
        r = k2.check(t + pd.Timedelta(minutes=5 * m), equity=1, capital=1, position_value=0, ordered=True)
    assert "3 orders within an hour" in r
    assert k2.check(t + pd.Timedelta("2h"), equity=1, capital=1, position_value=0, ordered=True) is None
    with pytest.raises(Exception, match="must be > 0"):
        KillSwitch(max_daily_loss=0)


def test_stale_feed_trips_the_kill_switch(fake_bybit, planted, tiny_model_dir, tmp_path):
    fake = fake_bybit(planted.iloc[:120], start_index=100, bar_seconds=0.03, faults=Faults(stall_s={3: 30.0}))
    args = live_args(fake, tiny_model_dir, tmp_path, max_bars=50, stale_after=5, extra=["--max-stale", "0.5"])
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "KILLED" and status["killed"].startswith("stale data: no bar for 0.5 s")
    assert status["live_bars"] == 4 and status["position"]["units"] == 0.0


@pytest.mark.slow
def test_testnet_session_trades_reconciles_and_never_shows_the_keys(
    fake_bybit, planted, trained_model_dir, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("BYBIT_API_KEY", KEY)
    monkeypatch.setenv("BYBIT_API_SECRET", SECRET)
    data = planted.iloc[12_000 - 150 : 12_000 + 45]
    fake = fake_bybit(
        data,
        start_index=150,
        bar_seconds=0.03,
        api_key=KEY,
        api_secret=SECRET,
        faults=Faults(drop_at={20}, refuse_s=0.1),
    )
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        args = live_args(fake, trained_model_dir, out, max_bars=40, stale_after=0.5, mode="--testnet")
        r = CliRunner().invoke(main, args + ["--cash", "1000"])
    assert r.exit_code == 0, r.output
    status = json.loads((out / "status.json").read_text())
    assert status["position"]["broker"] == "bybit" and status["position"]["reconciles"] >= 2  # start + after the drop
    assert status["position"]["units"] == pytest.approx(fake.position) and len(fake.orders) >= 1
    assert status["position"]["exchange_read_bar"] == status["live_bars"] - 1  # read back after every bar
    mark = status["position"]["mark_price"]  # the fake's clock runs on after the session: not its mark now
    want = 1000.0 + fake.cum_realised + fake.position * (mark - fake.avg_price)
    assert status["position"]["exchange_equity"] == pytest.approx(want)
    orders = pd.read_csv(out / "orders.csv")
    assert orders["order_link_id"].is_unique and set(orders["order_link_id"]) >= set(fake.orders)
    texts = [r.output, caplog.text] + [p.read_text() for p in out.iterdir()]
    for secret in (KEY, SECRET):
        assert not any(secret in t for t in texts), "an API key leaked into an output"


def test_mainnet_needs_explicit_confirmation(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BYBIT_API_KEY", KEY)
    monkeypatch.setenv("BYBIT_API_SECRET", SECRET)
    nowhere = SimpleNamespace(rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")  # nothing may connect
    args = live_args(nowhere, tiny_model_dir, tmp_path, mode="--live")
    r = CliRunner().invoke(main, args, input="yes\n")
    assert r.exit_code != 0 and "REAL MONEY" in r.output and "not confirmed; nothing was traded" in r.output
    r = CliRunner().invoke(main, args + ["--confirm-live", "ETHUSDT"])
    assert r.exit_code != 0 and "does not match --symbol" in r.output
    assert not any(tmp_path.iterdir())  # nothing started, nothing written


@pytest.mark.parametrize("category,why", [("spot", "marketUnit"), ("inverse", "settle in the coin")])
def test_spot_and_inverse_are_refused_before_any_request(category, why, tiny_model_dir, tmp_path, monkeypatch):
    """The broker sizes coins at capital / price and reconciles /v5/position/list: right for linear only."""
    monkeypatch.setenv("BYBIT_API_KEY", KEY)
    monkeypatch.setenv("BYBIT_API_SECRET", SECRET)
    with pytest.raises(SpecError, match=why):
        BybitBroker(None, "BTCUSDT", category, capital=1000.0)  # None: any request would fail otherwise
    nowhere = SimpleNamespace(rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")  # nothing may connect
    for mode in ("--testnet", "--live"):
        args = live_args(nowhere, tiny_model_dir, tmp_path / "out", mode=mode, extra=["--category", category])
        r = CliRunner().invoke(main, args, input="BTCUSDT\n")
        assert r.exit_code != 0 and why in r.output and "--paper" in r.output, r.output
        assert "REAL MONEY" not in r.output  # refused before the confirmation
    assert not (tmp_path / "out").exists()


def test_a_ruined_paper_account_stops_the_session_without_a_kill_switch(tmp_path):
    """Equity <= 0 stops a live session even when no kill switch was set (what the backtests call ruin)."""
    from effnet_trading.plugins.bybit.live import LiveSession
    from effnet_trading.plugins.bybit.paper import PaperBroker

    def bar(start: int, price: float) -> Bar:
        return Bar(start=start, open=price, high=price, low=price, close=price, volume=1.0)

    broker = PaperBroker(init_cash=1000.0, fees=0.0)
    broker.submit(pd.Timestamp("2024-01-01", tz="UTC"), "BTCUSDT", -1.0, "short-1")
    broker.on_bar(bar(60_000, 100.0))  # a 1x short of 10 units at 100: cash 2,000
    assert broker.units == pytest.approx(-10.0)
    scorer = SimpleNamespace(class_names=("sell", "hold", "buy"))
    session = LiveSession(
        scorer, None, None, broker, None, None, symbol="BTCUSDT", category="linear", interval="1", out_dir=tmp_path
    )
    assert session.kill_switch is None
    assert session._kill_check(bar(120_000, 150.0), ordered=False) is None  # equity 500
    reason = session._kill_check(bar(180_000, 201.0), ordered=False)  # equity -10
    assert reason is not None and "ruined" in reason and "-10.00" in reason


class _PositionREST:
    """A REST stub holding one position (signed units at avgPrice); orders move it, their fills never show."""

    endpoints = SimpleNamespace(network="testnet")

    def __init__(self, units: float = 0.0, avg: float = 0.0):
        self.units, self.avg = units, avg

    def call(self, name, path, **kw):
        if name == "get_positions":
            side = "Sell" if self.units < 0 else "Buy"
            return {
                "list": [{"size": str(abs(self.units)), "side": side, "avgPrice": str(self.avg)}] if self.units else []
            }
        if name == "place_order":
            self.units += float(kw["qty"]) * (1 if kw["side"] == "Buy" else -1)
            return {}
        return {"list": []}


def _flat_bar(start: int, price: float) -> Bar:
    return Bar(start=start, open=price, high=price, low=price, close=price, volume=1.0)


def test_a_position_found_on_the_exchange_counts_its_pnl_not_its_notional(tmp_path):
    """A session restarted while the account holds a 1x short (10 at 100): equity is capital + its PnL. Before,
    it was capital - 10 x price (negative), and the paper-account ruin stop must not apply to it anyway."""
    from effnet_trading.plugins.bybit.live import LiveSession

    instrument = {"lotSizeFilter": {"qtyStep": "0.001"}}
    broker = BybitBroker(_PositionREST(-10.0, 100.0), "BTCUSDT", capital=1000.0, instrument=instrument)
    broker.on_bar(_flat_bar(60_000, 100.5))
    assert broker.snapshot(100.5)["equity"] == pytest.approx(1000.0 - 10 * 0.5)
    session = LiveSession(
        SimpleNamespace(class_names=("sell", "hold", "buy")), None, None, broker, None, None,
        symbol="BTCUSDT", category="linear", interval="1", out_dir=tmp_path,
    )  # fmt: skip
    assert session._kill_check(_flat_bar(60_000, 100.5), ordered=False) is None
    # a fill the order query did not show, read back by the reconcile after a reconnect: priced at the last bar
    missed = BybitBroker(_PositionREST(), "BTCUSDT", capital=1000.0, instrument=instrument)
    missed.on_bar(_flat_bar(60_000, 100.0))
    missed.submit(pd.Timestamp(0, tz="UTC"), "BTCUSDT", -1.0, "x1")
    missed.reconcile()
    assert missed.units == pytest.approx(-10.0)
    assert missed.snapshot(100.1)["equity"] == pytest.approx(1000.0 - 10 * 0.1)


def _move_to(fake, i):
    """The fake's clock mid-way through bar ``i`` (its market orders fill at that bar's open)."""
    fake.state.now_ms = int(fake.state.starts[i]) + fake.state.step // 2


def test_fake_exchange_books_pnl_like_bybit(fake_bybit, planted):
    """The fake's realised PnL (closed PnL - fees - funding) and unrealised PnL, against a hand computation."""
    fake = fake_bybit(planted.iloc[:50], start_index=40, api_key=KEY, api_secret=SECRET, taker_fee=0.001)
    p0 = fake.state.values[40][0]
    assert fake.place_order({"qty": "0.100", "side": "Buy", "orderType": "Market", "orderLinkId": "a"})["retCode"] == 0
    _move_to(fake, 42)
    p2 = fake.state.values[42][0]
    fake.place_order({"qty": "0.300", "side": "Sell", "orderType": "Market", "orderLinkId": "b"})  # flip to -0.2
    paid = fake.charge_funding(0.001)  # a short receives positive funding
    assert paid == pytest.approx(-0.2 * p2 * 0.001)
    want = 0.1 * (p2 - p0) - 0.001 * (0.1 * p0 + 0.3 * p2) + 0.2 * p2 * 0.001
    assert fake.cum_realised == pytest.approx(want) and fake.avg_price == p2 and fake.position == pytest.approx(-0.2)
    _move_to(fake, 44)
    row = fake.trading_get("/v5/position/list", {})["result"]["list"][0]
    p4 = fake.state.values[44][0]
    assert float(row["unrealisedPnl"]) == pytest.approx(-0.2 * (p4 - p2)) and float(row["markPrice"]) == p4
    assert float(row["cumRealisedPnl"]) == pytest.approx(want) and row["side"] == "Sell"


def test_exchange_equity_counts_the_funding_that_the_estimate_misses(fake_bybit, planted, tmp_path):
    """A 1x long pays funding: the session's estimate does not see it, the exchange's figure does, and the
    kill switch's daily loss trips on the exchange's figure."""
    from effnet_trading.plugins.bybit.live import LiveSession

    fake = fake_bybit(planted.iloc[:50], start_index=40, api_key=KEY, api_secret=SECRET, taker_fee=0.00055)
    fake.cum_realised = 123.0  # PnL booked before the session: not this session's
    broker = BybitBroker(_rest(fake), "BTCUSDT", capital=1_000.0)
    assert broker.snapshot(100.0)["exchange_equity"] == pytest.approx(1_000.0)
    broker.on_bar(_bar(fake, 39))
    broker.submit(pd.Timestamp(0, tz="UTC"), "BTCUSDT", 1.0, "long-1")
    assert broker.units > 0 and len(broker.fills) == 1
    _move_to(fake, 43)
    broker.on_bar(_bar(fake, 42))
    broker.refresh()
    mark = fake.mark_price()
    snap = broker.snapshot(mark)
    assert snap["mark_price"] == mark and snap["exchange_read_bar"] == broker.bar
    assert snap["exchange_equity"] == pytest.approx(snap["equity"], abs=1e-9)  # no funding yet: the same
    session = LiveSession(
        SimpleNamespace(class_names=("sell", "hold", "buy")), None, None, broker, None, None,
        symbol="BTCUSDT", category="linear", interval="5", out_dir=tmp_path,
        kill_switch=KillSwitch(max_daily_loss=0.05),
    )  # fmt: skip
    flat = Bar(int(fake.state.starts[42]), mark, mark, mark, mark, 1.0)
    assert session._kill_check(flat, ordered=False) is None  # the day's first check: its start equity
    paid = fake.charge_funding(0.06)  # 6 % of the position value: about 60 of 1,000
    broker.refresh()
    snap = broker.snapshot(mark)
    assert paid > 50 and snap["exchange_equity"] == pytest.approx(snap["equity"] - paid)
    reason = session._kill_check(flat, ordered=False)
    assert reason is not None and reason.startswith(f"daily loss {paid:.2f}")


class _FlakyPositionREST(_PositionREST):
    """A position with the exchange's PnL fields; ``fail`` makes the next position read fail."""

    def __init__(self):
        super().__init__()
        self.pnl, self.fail = 0.0, None

    def call(self, name, path, **kw):
        if name == "get_positions":
            if self.fail is not None:
                err, self.fail = self.fail, None
                raise err
            return {"list": [{"size": "0", "side": "", "avgPrice": "0", "cumRealisedPnl": repr(self.pnl)}]}
        return super().call(name, path, **kw)


def test_a_failed_position_read_keeps_the_last_exchange_figure_and_a_bad_key_stops(caplog):
    rest = _FlakyPositionREST()
    broker = BybitBroker(rest, "BTCUSDT", capital=1000.0, instrument={"lotSizeFilter": {"qtyStep": "0.001"}})
    broker.on_bar(_flat_bar(60_000, 100.0))
    rest.pnl = -7.0
    broker.refresh()
    assert broker.snapshot(100.0)["exchange_equity"] == pytest.approx(993.0) and broker.exchange_read_bar == 0
    broker.on_bar(_flat_bar(120_000, 100.0))
    rest.pnl, rest.fail = -9.0, ExchangeError("service unavailable", code=10016)
    with caplog.at_level(logging.WARNING):
        broker.refresh()
    assert "exchange_equity stays at bar 0's read" in caplog.text
    assert broker.snapshot(100.0)["exchange_equity"] == pytest.approx(993.0) and broker.exchange_read_bar == 0
    broker.refresh()
    assert broker.snapshot(100.0)["exchange_equity"] == pytest.approx(991.0) and broker.exchange_read_bar == 1
    rest.fail = AuthError("API key is invalid.", code=10003)
    with pytest.raises(AuthError):
        broker.refresh()
    # an answer without the PnL fields (the stub above): no exchange figure, the kill switch uses the estimate
    plain = BybitBroker(_PositionREST(), "BTCUSDT", capital=1000.0, instrument={"lotSizeFilter": {"qtyStep": "0.001"}})
    assert plain.snapshot(100.0)["exchange_equity"] is None


def test_a_failed_read_falls_back_to_the_estimate_plus_what_it_missed(fake_bybit, planted):
    """The kill switch's figure when this bar's position read fails: the estimate now plus the funding the
    last good read showed, not the stale exchange figure (which would hide a move since)."""
    fake = fake_bybit(planted.iloc[:50], start_index=40, api_key=KEY, api_secret=SECRET)
    broker = BybitBroker(_rest(fake), "BTCUSDT", capital=1_000.0)
    broker.on_bar(_bar(fake, 39))
    broker.submit(pd.Timestamp(0, tz="UTC"), "BTCUSDT", 1.0, "long-1")
    paid = fake.charge_funding(0.01)
    broker.refresh()
    assert broker.snapshot(fake.mark_price())["limit_equity"] == pytest.approx(
        broker.snapshot(fake.mark_price())["exchange_equity"]
    )
    _move_to(fake, 46)
    broker.on_bar(_bar(fake, 45))
    fake.faults.rest.append(("position/list", "ret10001"))  # not retried: the read fails
    broker.refresh()
    price = fake.state.values[45][3]
    snap = broker.snapshot(price)
    assert broker.exchange_read_bar == broker.bar - 1 and snap["equity"] != pytest.approx(snap["exchange_equity"])
    assert snap["limit_equity"] == pytest.approx(snap["equity"] - paid)
    broker.refresh()  # the next read works again: the exchange's figure
    assert broker.exchange_read_bar == broker.bar
    assert broker.snapshot(price)["limit_equity"] == pytest.approx(broker.snapshot(price)["exchange_equity"])


def test_a_position_held_before_the_session_starts_both_equities_at_capital(fake_bybit, planted):
    fake = fake_bybit(planted.iloc[:50], start_index=30, api_key=KEY, api_secret=SECRET)
    fake.place_order({"qty": "0.500", "side": "Buy", "orderType": "Market", "orderLinkId": "before"})
    _move_to(fake, 40)  # the price moved since that fill: its PnL is not this session's
    broker = BybitBroker(_rest(fake), "BTCUSDT", capital=1_000.0)
    mark = fake.mark_price()
    assert mark != fake.avg_price and broker.units == pytest.approx(0.5)
    snap = broker.snapshot(mark)
    assert snap["equity"] == pytest.approx(1_000.0) and snap["exchange_equity"] == pytest.approx(1_000.0)


def test_a_kill_reads_the_flat_account_back(fake_bybit, planted, tmp_path):
    """After the kill switch flattens, the status shows the account as the exchange books it (closing fee in)."""
    import asyncio

    from effnet_trading.plugins.bybit.live import LiveSession

    fake = fake_bybit(planted.iloc[:50], start_index=40, api_key=KEY, api_secret=SECRET)
    broker = BybitBroker(_rest(fake), "BTCUSDT", capital=1_000.0)
    broker.on_bar(_bar(fake, 39))
    broker.submit(pd.Timestamp(0, tz="UTC"), "BTCUSDT", 1.0, "long-1")
    broker.refresh()
    session = LiveSession(
        SimpleNamespace(class_names=("sell", "hold", "buy")), None, None, broker, None, None,
        symbol="BTCUSDT", category="linear", interval="5", out_dir=tmp_path,
    )  # fmt: skip
    sink = SimpleNamespace(write=lambda row: None)
    asyncio.run(session._kill(pd.Timestamp(0, tz="UTC"), "test", sink, sink))
    assert fake.position == 0.0 and broker.units == 0.0
    assert broker.snapshot(1.0)["exchange_equity"] == pytest.approx(1_000.0 + fake.cum_realised)


def test_a_refresh_gives_up_within_its_own_budget_not_the_order_path_s(fake_bybit, planted):
    """A position endpoint that keeps answering "rate limited" holds the bar loop for read_budget_s, not for the
    REST client's whole retry budget (60 s by default)."""
    import time

    fake = fake_bybit(planted.iloc[:50], start_index=40, api_key=KEY, api_secret=SECRET)
    ep = resolve_endpoints("testnet", fake.rest_url, fake.ws_url)
    rest = BybitREST(ep, api_key=KEY, api_secret=SECRET, retry=RetryPolicy(base_s=0.05, cap_s=0.1, total_s=60.0))
    broker = BybitBroker(rest, "BTCUSDT", capital=1_000.0)
    broker.read_budget_s = 0.5
    fake.faults.rest.extend([("position/list", "ret10006")] * 1000)
    t0 = time.monotonic()
    broker.refresh()  # logged and kept, not raised
    assert time.monotonic() - t0 < 5.0 and broker.exchange_read_bar == -1
