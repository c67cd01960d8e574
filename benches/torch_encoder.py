"""The PyTorch eager side of the encoder benchmarks in `just bench` (benches/bench.rs).

A plain BERT in PyTorch (nn.Linear, F.scaled_dot_product_attention, F.layer_norm: what
transformers' BertModel runs with its default SDPA attention), its weights read from a
checkpoint's model.safetensors (parsed here, so only torch is needed).

    python benches/torch_encoder.py embed DIR      # DIR/manifest.json: checkpoint, threads, batches of
                                                   # token ids; prints seconds and the first batch's
                                                   # pooled embeddings
    python benches/torch_encoder.py finetune DIR   # DIR/manifest.json: checkpoint, threads, head, rows,
                                                   # per-step pair indices, lr, lambda; prints seconds and
                                                   # every step's loss (--losses)

Every batch is exactly what rmlab ran (the same ids, the same padding), so both sides do the same
arithmetic; timings end with a device synchronisation on CUDA.
"""

import json
import math
import pathlib
import struct
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}


def read_safetensors(path):
    raw = pathlib.Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=DTYPES[info["dtype"]])
        out[name.removeprefix("bert.")] = t.reshape(info["shape"])
    return out


class Bert(torch.nn.Module):
    def __init__(self, cfg, weights):
        super().__init__()
        self.cfg = cfg
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v.float().clone())
                                         for k, v in weights.items() if not k.endswith("position_ids")
                                         and not k.startswith("pooler.")})

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def lin(self, x, name):
        return F.linear(x, self.w(name + ".weight"), self.w(name + ".bias"))

    def norm(self, x, name):
        return F.layer_norm(x, (x.shape[-1],), self.w(name + ".weight"), self.w(name + ".bias"),
                            self.cfg["layer_norm_eps"])

    def forward(self, ids, types, mask):
        b, l = ids.shape
        h, nh = self.cfg["hidden_size"], self.cfg["num_attention_heads"]
        x = (F.embedding(ids, self.w("embeddings.word_embeddings.weight"))
             + self.w("embeddings.position_embeddings.weight")[:l].unsqueeze(0)
             + F.embedding(types, self.w("embeddings.token_type_embeddings.weight")))
        x = self.norm(x, "embeddings.LayerNorm")
        bias = ((1.0 - mask.float()) * torch.finfo(torch.float32).min).view(b, 1, 1, l)
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}"
            q, k, v = (self.lin(x, f"{p}.attention.self.{n}").view(b, l, nh, h // nh).transpose(1, 2)
                       for n in ("query", "key", "value"))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(b, l, h)
            a = self.norm(self.lin(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            inter = F.gelu(self.lin(a, f"{p}.intermediate.dense"))
            x = self.norm(self.lin(inter, f"{p}.output.dense") + a, f"{p}.output.LayerNorm")
        return x


def mean_pool(hs, mask):
    m = mask.unsqueeze(-1).float()
    return (hs * m).sum(1) / m.sum(1).clamp(min=1e-9)


def load_model(ckpt, dev):
    cfg = json.loads((pathlib.Path(ckpt) / "config.json").read_text())
    return Bert(cfg, read_safetensors(pathlib.Path(ckpt) / "model.safetensors")).to(dev)


def tensor(d, entry, dtype):
    raw = (d / entry["file"]).read_bytes()
    return torch.frombuffer(bytearray(raw), dtype=dtype).reshape(entry["shape"])


def embed(d, m, dev):
    model = load_model(m["checkpoint"], dev).eval()
    batches = []
    for bt in m["batches"]:
        ids = tensor(d, bt["ids"], torch.int64).to(dev)
        types = tensor(d, bt["types"], torch.int64).to(dev)
        mask = tensor(d, bt["mask"], torch.int64).to(dev)
        batches.append((ids, types, mask))
    first = None
    with torch.inference_mode():
        for _ in range(m.get("warmup", 1)):
            model(*batches[0])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i, (ids, types, mask) in enumerate(batches):
            pooled = mean_pool(model(ids, types, mask), mask)
            if i == 0:
                first = pooled
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    texts = sum(b[0].shape[0] for b in batches)
    return {"seconds": seconds, "texts": texts, "first": first.float().cpu().reshape(-1).tolist()}


def finetune(d, m, dev, record):
    model = load_model(m["checkpoint"], dev).train()  # dropout: none in this model, as in rmlab's default
    head = torch.nn.Linear(m["hidden"], 1).to(dev)
    with torch.no_grad():
        head.weight.copy_(tensor(d, m["head_weight"], torch.float32).reshape(1, -1))
        head.bias.copy_(tensor(d, m["head_bias"], torch.float32))
    rows = tensor(d, m["rows"], torch.int64).to(dev)  # [N, 3, L]
    steps = tensor(d, m["steps"], torch.int64).to(dev)  # [S, B]: pair indices
    chosen = tensor(d, m["chosen"], torch.int64).to(dev)
    rejected = tensor(d, m["rejected"], torch.int64).to(dev)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=m["lr"], betas=(0.9, 0.999), eps=1e-8)
    lam = m["lambda"]
    losses = []
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(steps.shape[0]):
        idx = steps[s]
        x = rows[torch.cat([chosen[idx], rejected[idx]])]
        ids, types, mask = x[:, 0], x[:, 1], x[:, 2]
        r = head(mean_pool(model(ids, types, mask), mask)).squeeze(-1)
        b = idx.shape[0]
        r_a, r_b = r[:b], r[b:]
        loss = -F.logsigmoid(r_a - r_b).mean() + lam * ((r_a + r_b) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if record:
            losses.append(loss.item())
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - t0, "steps": int(steps.shape[0]), "losses": losses}


def main():
    what, d = sys.argv[1], pathlib.Path(sys.argv[2])
    m = json.loads((d / "manifest.json").read_text())
    torch.set_num_threads(m["threads"])
    dev = torch.device(m.get("device", "cpu"))
    out = embed(d, m, dev) if what == "embed" else finetune(d, m, dev, "--losses" in sys.argv)
    out["torch"] = torch.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
