"""Writes the seed corpora of fuzz/corpus/ from the repository's test fixtures and vendored data
(small slices, so the whole corpus stays well under 2 MB). Run from the repository root with the
project venv: `.venv/bin/python fuzz/make_corpus.py`. The store seeds are written by
`cargo test --release --locked --test fuzz_corpus -- --ignored write_store_seeds`."""

import gzip
import io
import json
import shutil
import struct
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
TRL = ROOT / "tests" / "fixtures" / "trl"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def lines(path, n, start=0):
    with open(path, "rb") as f:
        return b"".join(f.readlines()[start : start + n])


def gz(data, mtime=0):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=mtime) as f:
        f.write(data)
    return out.getvalue()


def spec():
    for p in sorted((ROOT / "experiments").glob("*.toml")):
        put("spec", p.name, p.read_bytes())


def jsonl():
    for name in ["pairs", "implicit", "conversation", "graph"]:
        put("preference_jsonl", f"{name}.jsonl", lines(TRL / f"{name}.jsonl", 4))
    for p in sorted(TRL.glob("bad_*.jsonl")) + [TRL / "empty_response.jsonl"]:
        put("preference_jsonl", p.name, p.read_bytes())
    put("preference_jsonl", "bom_blank_margin.jsonl",
        b'\xef\xbb\xbf{"prompt": null, "chosen": "a b", "rejected": "a c", "margin": 1.5}\n\n  \n'
        b'{"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}],'
        b' "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "no"}]}\n')


def gzipped():
    put("preference_gz", "pairs.jsonl.gz", gz(lines(TRL / "pairs.jsonl", 4)))
    put("preference_gz", "implicit.jsonl.gz", gz(lines(TRL / "implicit.jsonl", 3)))
    # Several gzip members, as `cat a.gz b.gz` makes.
    put("preference_gz", "members.jsonl.gz",
        gz(lines(TRL / "graph.jsonl", 3)) + gz(lines(TRL / "graph.jsonl", 3, start=3)))
    for p in sorted((ROOT / "data" / "preferences").glob("*.jsonl.gz")):
        with gzip.open(p, "rb") as f:
            first = f.readline() + f.readline()
        put("preference_gz", p.name, gz(first))


def parquet():
    def write(name, df):
        out = io.BytesIO()
        df.write_parquet(out)
        put("preference_parquet", name, out.getvalue())

    rows = [json.loads(l) for l in lines(TRL / "pairs.jsonl", 4).splitlines()]
    write("pairs.parquet", pl.DataFrame(rows))
    rows = [json.loads(l) for l in lines(TRL / "conversation.jsonl", 3).splitlines()]
    write("conversation.parquet", pl.DataFrame(rows))
    rows = [json.loads(l) for l in lines(TRL / "embeddings.jsonl", 3).splitlines()]
    write("embeddings.parquet", pl.DataFrame(rows))
    write("nulls_margin.parquet", pl.DataFrame(
        {"prompt": [None, "q"], "chosen": ["a b", "x"], "rejected": ["a c", "y"], "margin": [None, 2.0]}))


def embeddings():
    put("embeddings", "embeddings.jsonl", lines(TRL / "embeddings.jsonl", 4))
    # One row of another length: the most common length decides which row is bad.
    short = json.loads(lines(TRL / "embeddings.jsonl", 1, start=4))
    short["embedding_chosen"] = short["embedding_chosen"][:3]
    short["embedding_rejected"] = short["embedding_rejected"][:3]
    put("embeddings", "one_short.jsonl",
        json.dumps(short).encode() + b"\n" + lines(TRL / "embeddings.jsonl", 2, start=5))
    put("embeddings", "tiny.jsonl",
        b'{"prompt": "p", "chosen": "a", "rejected": "b", "embedding_chosen": [1, 2.5], "embedding_rejected": [0, -1e3]}\n'
        b'{"prompt": "p", "chosen": "c", "rejected": "b", "embedding_chosen": [1, 2], "embedding_rejected": [0, 1]}\n')


def safetensors(weights, dtype):
    """The safetensors bytes of the fixture's encoder weights (without the head)."""
    fmt = {"F32": "<%df", "F16": "<%de"}[dtype]
    size = {"F32": 4, "F16": 2}[dtype]
    header, blobs, offset = {}, [], 0
    for name, w in weights.items():
        if name.startswith("head."):
            continue
        blob = struct.pack(fmt % len(w["values"]), *w["values"])
        header[name] = {"dtype": dtype, "shape": w["shape"], "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def encoder():
    fx = json.loads((ROOT / "tests" / "fixtures" / "encoder" / "tiny_bert.json").read_text())
    config = json.dumps(fx["config"]).encode()
    # config.json, 0xFF, model.safetensors (see `encoder` in fuzz/src/lib.rs).
    put("encoder", "tiny_f16", config + b"\xff" + safetensors(fx["weights"], "F16"))
    put("encoder", "tiny_f32", config + b"\xff" + safetensors(fx["weights"], "F32"))
    # Only the header: the checkpoint check passes, the weights are missing.
    st = safetensors(fx["weights"], "F16")
    n = struct.unpack("<Q", st[:8])[0]
    put("encoder", "header_only", config + b"\xff" + st[: 8 + n])


if __name__ == "__main__":
    for target in ["spec", "preference_jsonl", "preference_gz", "preference_parquet", "embeddings", "encoder"]:
        shutil.rmtree(CORPUS / target, ignore_errors=True)
    spec()
    jsonl()
    gzipped()
    parquet()
    embeddings()
    encoder()
