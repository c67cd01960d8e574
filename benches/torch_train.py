"""The PyTorch eager equivalent of an rmlab training run, for `just bench`.

Reads what benches/bench.rs exported (manifest.json + raw little-endian arrays): features,
training pairs, the exact batch indices of every step and the initial weights, then trains the
same MLP (Linear → ReLU → … → Linear(·, 1)) with the same Adam settings and the plain
Bradley–Terry loss −log σ(r_a − r_b), batch mean. One forward over [chosen; rejected]. The
manifest's "device" (cpu or cuda) says where; CUDA timings end with a synchronisation.

    python benches/torch_train.py DIR [--losses]    # prints JSON: seconds (and losses)

With --losses, every step's loss is read back (a host sync per step: for the curve check);
without, nothing is read until the end (for timing).
"""

import json
import pathlib
import sys
import time

import torch
import torch.nn.functional as F


def load(d, entry, dtype):
    raw = (d / entry["file"]).read_bytes()
    return torch.frombuffer(bytearray(raw), dtype=dtype).reshape(entry["shape"])


def main():
    d = pathlib.Path(sys.argv[1])
    record = "--losses" in sys.argv
    m = json.loads((d / "manifest.json").read_text())
    torch.set_num_threads(m["threads"])
    dev = torch.device(m.get("device", "cpu"))
    feats = load(d, m["features"], torch.float32).to(dev)
    chosen = load(d, m["chosen"], torch.int64).to(dev)
    rejected = load(d, m["rejected"], torch.int64).to(dev)
    batches = load(d, m["batches"], torch.int64).to(dev)
    layers = []
    for name in m["layers"]:
        w = load(d, m["weights"][name + ".weight"], torch.float32)
        b = load(d, m["weights"][name + ".bias"], torch.float32)
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers.append(lin)
    mods = []
    for lin in layers[:-1]:
        mods += [lin, torch.nn.ReLU()]
    model = torch.nn.Sequential(*mods, layers[-1]).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=m["lr"], betas=(0.9, 0.999), eps=1e-8)
    steps, b = batches.shape
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        idx = batches[step]
        rows = torch.cat([chosen[idx], rejected[idx]])
        r = model(feats[rows]).squeeze(-1)
        loss = -F.logsigmoid(r[:b] - r[b:]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if record:
            losses.append(loss.item())
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "steps": steps, "losses": losses, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
