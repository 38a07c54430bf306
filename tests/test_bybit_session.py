"""Live paper sessions against the loopback fake Bybit: parity with ``backtest``, faults, failover."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _helpers import live_args
from click.testing import CliRunner

from effnet_trading.plugins.bybit import build_live_session
from effnet_trading.plugins.bybit.fake_exchange import Faults
from effnet_trading.plugins.cli import main
from effnet_trading.strategies import simulate

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]

W, N = 150, 40  # bars before the stream starts, live bars traded


def _segment(data: pd.DataFrame, dec: pd.DataFrame) -> pd.DataFrame:
    """The source bars the session saw (warm-up + live): consecutive, none lost, none twice."""
    ts = pd.DatetimeIndex(pd.to_datetime(dec["timestamp"], utc=True))
    first = data.index.get_loc(ts[0])
    seg = data.iloc[first : first + len(dec)]
    assert seg.index.equals(ts.rename("timestamp")), "decisions skip or repeat bars"
    return seg


# one bar every 0.1 s: the CLI's feed waits 0.5 s before its first reconnect (5 bars)
@pytest.mark.parametrize(
    "faults",
    [Faults(), Faults(drop_at={3}, refuse_s=0.1, duplicate={14}, reorder={18}, malformed={22}, stall_s={28: 0.5})],
    ids=["clean", "faults"],
)
def test_live_paper_cli_equals_backtest_bar_by_bar(fake_bybit, planted, trained_model_dir, tmp_path, faults):
    data = planted.iloc[12_000 - W : 12_000 + N + 5]
    fake = fake_bybit(data, start_index=W, bar_seconds=0.1, faults=faults)
    out = tmp_path / "live"
    args = live_args(fake, trained_model_dir, out, max_bars=N, stale_after=0.4)
    r = CliRunner().invoke(main, args + ["--fees", "0.001", "--slippage", "0.0005"])
    assert r.exit_code == 0, r.output
    dec = pd.read_csv(out / "decisions.csv")
    assert (dec["phase"] == "live").sum() == N and (dec["phase"] == "warmup").sum() >= 1
    seg = _segment(data, dec)

    seg.to_csv(tmp_path / "seg.csv", index_label="timestamp")
    r = CliRunner().invoke(
        main,
        [
            "backtest",
            "--data",
            str(tmp_path / "seg.csv"),
            "--model",
            str(trained_model_dir),
            "--engine",
            "vectorbt",
            "--out",
            str(tmp_path / "bt"),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    sig = pd.read_csv(tmp_path / "bt" / "signals.csv")
    assert list(dec.columns[: len(sig.columns)]) == list(sig.columns)  # diffable: same leading columns
    assert list(dec["timestamp"]) == list(sig["timestamp"])
    classes = [c for c in sig.columns if c not in ("timestamp", "target")]
    np.testing.assert_allclose(dec[classes].to_numpy(), sig[classes].to_numpy(), rtol=1e-6, atol=0, equal_nan=True)
    assert dec["target"].tolist() == sig["target"].tolist()
    live = dec[dec["phase"] == "live"]
    assert (live["target"] != 0).any() and live["target"].nunique() >= 2, "the parity check needs trades"
    assert live["predictor"].str.startswith("0:").all()  # the model answered every live bar

    # paper fills = the execution contract over the live bars (orders from the first live bar on)
    fills = pd.read_csv(out / "fills.csv")
    live_bars = seg.loc[pd.to_datetime(live["timestamp"], utc=True)]
    ref = simulate(
        live_bars, pd.Series(live["target"].to_numpy(), index=live_bars.index), fees=0.001, slippage=0.0005
    ).orders
    assert len(fills) == len(ref) >= 1
    assert list(pd.to_datetime(fills["time"], utc=True)) == list(ref["time"])
    np.testing.assert_allclose(
        fills[["size", "price", "fee"]].to_numpy(), ref[["size", "price", "fee"]].to_numpy(), rtol=1e-9
    )
    orders = pd.read_csv(out / "orders.csv")
    assert orders["order_link_id"].is_unique and len(orders) >= len(fills)

    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "STOPPED" and status["live_bars"] == N
    assert status["position"]["units"] == pytest.approx(fills["units"].iloc[-1])
    assert status["latency_ms"]["p99"] > 0 and status["feed"]["gaps"] == []
    if faults.drop_at:
        states = [s for _, s, _ in status["feed"]["transitions"]]
        assert "LIVE" in states[states.index("DISCONNECTED") :], states  # DISCONNECTED -> DELAYED (backfill) -> LIVE
        feed = status["feed"]
        assert feed["duplicates"] >= 1 and feed["backfilled"] >= 1 and feed["malformed"] == 3 and feed["stale"] == 1, (
            feed
        )


class _FailsOnce:
    """A predictor that raises on its k-th call (a model fault mid-session)."""

    def __init__(self, inner, k):
        self.inner, self.k, self.calls = inner, k, 0
        self.name = "flaky"

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, images, closes=None):
        self.calls += 1
        if self.calls == self.k:
            raise RuntimeError("GPU fell off the bus")
        return self.inner.predict(images, closes=closes)


def test_model_fault_fails_over_without_missing_a_bar(fake_bybit, planted, trained_model_dir, tmp_path):
    data = planted.iloc[12_000 - W : 12_000 + 30]
    fake = fake_bybit(data, start_index=W, bar_seconds=0.02)
    session = build_live_session(
        trained_model_dir,
        symbol="BTCUSDT",
        interval="5",
        out_dir=tmp_path,
        rest_url=fake.rest_url,
        ws_url=fake.ws_url,
        stale_after_s=1.0,
    )
    chain = session.scorer.model
    warm_calls = session._warmup_count() - session.scorer.warmup
    chain.members[0] = _FailsOnce(chain.members[0], k=warm_calls + 5)  # the 5th live bar's call fails
    session.run_sync(max_bars=12)
    dec = pd.read_csv(tmp_path / "decisions.csv")
    _segment(data, dec)
    live = dec[dec["phase"] == "live"].reset_index(drop=True)
    assert len(live) == 12 and live[["sell", "hold", "buy"]].notna().all().all()
    assert live["predictor"].iloc[4] == "1:rule:momentum(15)" and live["predictor"].iloc[3].startswith("0:")
    assert chain.health[chain.names[0]]["total_failures"] == 1
