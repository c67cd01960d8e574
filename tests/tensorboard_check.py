"""Reads rmlab's TensorBoard event files back with TensorBoard's own reader and compares them
with the store: every scalar of every run directory against the store's metric at that step
(exact to float32), and the hparams plugin's session data against the run's params.

    .venv/bin/python tests/tensorboard_check.py LOGDIR STORE [EXPERIMENT]

Prints one line per run directory and `ok N runs M scalars`; exits 1 naming the first
difference. Called by tests/tensorboard.rs.
"""

import math
import os
import sqlite3
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def fail(message):
    print("FAIL", message)
    sys.exit(1)


def rust_text(v):
    """A param value as rmlab names directories with it (Rust's Display of i64 and f64)."""
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return str(int(v)) if v == int(v) else repr(v)
    return str(v)


def main():
    logdir, db = sys.argv[1], sys.argv[2]
    experiment = sys.argv[3] if len(sys.argv) > 3 else None
    conn = sqlite3.connect(db)
    runs = {}
    for (run_id,) in conn.execute(
        "SELECT id FROM runs WHERE status = 'finished' AND (?1 IS NULL OR experiment = ?1)", (experiment,)
    ):
        params = dict(conn.execute("SELECT key, value FROM params WHERE run_id = ?", (run_id,)).fetchall())
        swept = conn.execute("SELECT key, value FROM params WHERE run_id = ? AND swept = 1 ORDER BY key", (run_id,))
        exp = conn.execute("SELECT experiment FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        name = exp + "/" + ",".join(f"{k}={rust_text(v)}" for k, v in swept)
        metrics = conn.execute("SELECT split, name, step, value FROM metrics WHERE run_id = ?", (run_id,)).fetchall()
        runs[name] = (run_id, params, metrics)

    dirs = sorted(
        os.path.relpath(root, logdir)
        for root, _, files in os.walk(logdir)
        if any("tfevents" in f for f in files)
    )
    if sorted(runs) != dirs:
        fail(f"run directories {dirs} are not the store's runs {sorted(runs)}")

    total = 0
    for name in dirs:
        run_id, params, metrics = runs[name]
        acc = ea.EventAccumulator(
            os.path.join(logdir, name), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0}, purge_orphaned_data=True
        )
        acc.Reload()
        expected = {}
        for split, metric, step, value in metrics:
            expected.setdefault(f"{split}/{metric}", {})[step] = value
        tags = acc.Tags()["scalars"]
        if sorted(tags) != sorted(expected):
            fail(f"{name}: tags {sorted(tags)} are not the store's {sorted(expected)}")
        for tag in tags:
            got = {e.step: e.value for e in acc.Scalars(tag)}
            want = expected[tag]
            if sorted(got) != sorted(want):
                fail(f"{name} {tag}: steps {sorted(got)} are not the store's {sorted(want)}")
            for step, v in want.items():
                w = float("nan") if v is None else f32(v)
                g = got[step]
                if not (g == w or (math.isnan(g) and math.isnan(w))):
                    fail(f"{name} {tag} step {step}: {g!r} in the event file, {w!r} (float32) in the store")
                total += 1

        content = acc.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        if start.version != 0 or not start.HasField("session_start_info"):
            fail(f"{name}: no session start info")
        hparams = start.session_start_info.hparams
        want = {k: v for k, v in params.items() if v is not None}
        if sorted(hparams) != sorted(want):
            fail(f"{name}: hparams {sorted(hparams)} are not the params {sorted(want)}")
        for key, value in want.items():
            hp = hparams[key]
            if isinstance(value, str):
                ok = hp.WhichOneof("kind") == "string_value" and hp.string_value == value
            else:
                ok = hp.WhichOneof("kind") == "number_value" and hp.number_value == float(value)
            if not ok:
                fail(f"{name}: hparam {key} is {str(hp).strip()!r} but the param is {value!r}")
        end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
        if end.session_end_info.status != api_pb2.STATUS_SUCCESS:
            fail(f"{name}: a finished run's session ended with status {end.session_end_info.status}")
        print(f"{name}: {len(tags)} tags, {len(metrics)} scalars, {len(hparams)} hparams")
    print(f"ok {len(dirs)} runs {total} scalars")


main()
