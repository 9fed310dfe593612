"""The SQL sources against a real MySQL or MariaDB server: the round trips of nbs/04_sources.ipynb (which runs
them on SQLite) on the server named by $MQBENCH_TEST_MYSQL_URL, e.g.
mysql+pymysql://mqbench:mqbench@127.0.0.1:3306/mqbench (.ci/mariadb.sh starts one). Skipped when the variable
is unset, unless MQBENCH_REQUIRE_MYSQL=1 (as in CI), when that is a failure."""
import os, secrets, time

import numpy as np
import pytest
import sqlalchemy as sa

from mqbench import itch, sources, synth
from mqbench.book import replay
from mqbench.core import MqbenchError, real_data_dir

URL = os.environ.get("MQBENCH_TEST_MYSQL_URL")


@pytest.fixture(scope="module")
def url():
    if not URL:
        if os.environ.get("MQBENCH_REQUIRE_MYSQL") == "1":
            pytest.fail("MQBENCH_REQUIRE_MYSQL=1 but MQBENCH_TEST_MYSQL_URL is not set; run .ci/mariadb.sh and export it")
        pytest.skip("MQBENCH_TEST_MYSQL_URL is not set (see .ci/mariadb.sh)")
    with sources.database(URL):                                  # fails here, clearly, if the server is not up
        pass
    return URL


@pytest.fixture
def tables(url):
    "Fresh table names for one test; whatever they became is dropped afterwards."
    made = []
    def name(stem):
        made.append(f"{stem}_{secrets.token_hex(4)}")
        return made[-1]
    yield name
    eng = sa.create_engine(url)
    try:
        with eng.begin() as conn:
            for t in made: conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{t}`")
    finally:
        eng.dispose()


def leftovers(url, stem):
    "Tables of the database whose name starts with `stem` (a staging table must never remain)."
    eng = sa.create_engine(url)
    try: return [t for t in sa.inspect(eng).get_table_names() if t.startswith(stem)]
    finally: eng.dispose()


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    path = tmp_path_factory.mktemp("sql") / "day.itch"
    synth.generate(path, symbols=2, hours=0.02, seed=1)
    return path


def test_messages_round_trip(url, tables, day):
    t = tables("itch_messages")
    summary = sources.write_sql_messages(day, url, t)
    assert summary["url"] == sources.mask_url(url) and "mqbench:***@" in summary["url"]
    got = sources.read_sql_messages(url, t)
    assert got == itch.encode(itch.read(day, types=sources.MESSAGE_TYPES)).tobytes()
    want, back = replay(day), replay(got)
    assert back.bbo.equals(want.bbo) and back.trades.equals(want.trades) and len(want.trades) > 1000
    one = replay(sources.read_sql_messages(url, t, symbols=["MIDC"]))
    only = replay(day, symbols=["MIDC"])
    assert one.bbo.equals(only.bbo) and one.trades.equals(only.trades)
    assert itch.stats(sources.read_sql_messages(url, t, limit=500))["total"] == 500
    assert sources.read_sql_messages(url, t, batch_rows=4096) == got       # many server-side batches


def test_replace_append_and_nothing_half_written(url, tables, day):
    t = tables("msgs")
    head = itch.encode(itch.read(day, types="SR")).tobytes()
    sources.write_sql_messages(head, url, t, types="SR")
    with pytest.raises(MqbenchError, match="the table exists"):
        sources.write_sql_messages(head, url, t, types="SR")
    assert sources.write_sql_messages(head, url, t, types="SR", if_exists="append")["first_seq"] == 8
    assert itch.stats(sources.read_sql_messages(url, t))["by_type"] == {"R": 4, "S": 12}
    damaged = day.read_bytes()[:200_000] + b"\x00\x05Zjunk"
    for if_exists in ("replace", "append"):
        with pytest.raises(MqbenchError, match="byte offset"):
            sources.write_sql_messages(damaged, url, t, if_exists=if_exists, types="SR" if if_exists == "append" else None)
        assert itch.stats(sources.read_sql_messages(url, t))["by_type"] == {"R": 4, "S": 12}   # untouched
    fresh = tables("fresh")
    with pytest.raises(MqbenchError, match="byte offset"):
        sources.write_sql_messages(damaged, url, fresh)
    assert leftovers(url, fresh[:20]) == []
    sources.write_sql_messages(day, url, t, if_exists="replace")
    assert leftovers(url, t) == [t]
    assert replay(sources.read_sql_messages(url, t)).bbo.equals(replay(day).bbo)


def test_bad_message_tables(url, tables, day):
    t, thin = tables("broken"), tables("thin")
    with pytest.raises(MqbenchError, match=f"table {t}: no such table"):
        sources.read_sql_messages(url, t)
    eng = sa.create_engine(url)
    try:
        with eng.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE `{thin}` (seq BIGINT, msg_type CHAR(1))")
        with pytest.raises(MqbenchError, match=r"lacks the required column\(s\) \['stock_locate', 'tracking_number', 'timestamp'\]"):
            sources.read_sql_messages(url, thin)
        sources.write_sql_messages(day, url, t, types="SRA")
        with eng.begin() as conn:
            seq = conn.exec_driver_sql(f"SELECT seq FROM `{t}` WHERE msg_type = 'A' ORDER BY seq LIMIT 1 OFFSET 50").scalar()
            conn.exec_driver_sql(f"UPDATE `{t}` SET shares = NULL WHERE seq = %s", (seq,))
        with pytest.raises(MqbenchError, match=f"message seq {seq}: shares is NULL"):
            sources.read_sql_messages(url, t)
        with pytest.raises(MqbenchError, match=r"no messages for symbol\(s\) \['NOPE'\]"):
            sources.read_sql_messages(url, t, symbols=["NOPE"])
    finally:
        eng.dispose()
    with pytest.raises(MqbenchError, match="expected letters, digits and _"):
        sources.read_sql_messages(url, f"{t}`; DROP TABLE `{thin}")
    assert leftovers(url, thin) == [thin]


def test_trades_round_trip(url, tables):
    t = tables("trades")
    eth = sources.read_binance_trades(real_data_dir() / "ETHUSDT-trades-2023-02-02-sample.csv")
    eng = sa.create_engine(url)
    try:
        eth.rename(columns={"ts_ns": "t", "size": "qty", "trade_id": "tid"}) \
           .assign(aggressor=eth.aggressor.map({1: "B", -1: "S"})).to_sql(t, eng, index=False)
    finally:
        eng.dispose()
    cols = {"ts_ns": "t", "size": "qty", "trade_id": "tid"}
    assert sources.read_sql_trades(url, t, columns=cols).equals(eth)
    assert sources.read_sql_trades(url, t, columns=cols, symbols="ETHUSDT", limit=7).equals(eth.head(7))
    with pytest.raises(MqbenchError, match=r"lacks column\(s\) \['ts_ns \(for ts_ns\)'"):
        sources.read_sql_trades(url, t)


def test_unreachable_servers_fail_fast_with_the_password_masked(url):
    bad = sa.engine.make_url(url).set(password="wrong-secret")
    t0 = time.perf_counter()
    with pytest.raises(MqbenchError) as e:
        sources.read_sql_messages(bad.render_as_string(hide_password=False), "itch_messages")
    assert "cannot connect" in str(e.value) and "***" in str(e.value) and "wrong-secret" not in str(e.value)
    with pytest.raises(MqbenchError) as e:
        sources.read_sql_trades("mysql+pymysql://u:secret@127.0.0.1:1/db", "trades")
    assert "mysql+pymysql://u:***@127.0.0.1:1/db: cannot connect" in str(e.value) and "secret" not in str(e.value)
    assert time.perf_counter() - t0 < 20


def test_prepare_from_the_server(url, tables, day, tmp_path):
    "A dataset from the server's message table equals the one the ITCH file itself gives."
    from mqbench.features import SPLITS, load_dataset
    from mqbench.prepare import prepare_itch, prepare_sql
    t = tables("itch_messages")
    sources.write_sql_messages(day, url, t)
    prepare_sql(url, t, tmp_path / "sql")
    prepare_itch(day, tmp_path / "file")
    a, b = load_dataset(tmp_path / "file"), load_dataset(tmp_path / "sql")
    for k in SPLITS:
        assert a[k].windows.equals(b[k].windows) and np.array_equal(a[k].rows, b[k].rows), k
