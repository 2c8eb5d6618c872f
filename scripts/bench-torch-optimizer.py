"""torch.optim.AdamW step time over a given list of parameter sizes: the Python column of `bench optimizer`.

stdin: JSON {"sizes": [n0, n1, ...], "threads": T, "reps": R}. stdout: one JSON object with the medians (ms) of
AdamW foreach=True and foreach=False, alternated rep by rep, after two warm-up steps each. Parameters, grads and
hyperparameters as the ONNX bench's (lr 1e-3, weight decay 0.1, fp32; grads fixed, set once).
"""
import json
import sys
import time

import torch


def main() -> None:
    cfg = json.load(sys.stdin)
    sizes = [int(n) for n in cfg["sizes"]]
    threads = int(cfg["threads"])
    reps = int(cfg["reps"])
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)

    def make(foreach: bool):
        params = [torch.nn.Parameter(torch.full((n,), 0.5)) for n in sizes]
        for p in params:
            p.grad = ((torch.arange(p.numel()) % 1000) - 500).float() * 1e-4
        opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, foreach=foreach)
        return opt

    runs = {"foreach": make(True), "single": make(False)}
    times = {k: [] for k in runs}
    for r in range(reps + 2):
        for k, opt in runs.items():
            t0 = time.perf_counter()
            opt.step()
            dt = (time.perf_counter() - t0) * 1e3
            if r >= 2:
                times[k].append(dt)

    def median(xs):
        s = sorted(xs)
        return s[len(s) // 2]

    print(json.dumps({
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "tensors": len(sizes),
        "params": sum(sizes),
        "foreach_ms": round(median(times["foreach"]), 3),
        "single_ms": round(median(times["single"]), 3),
    }))


if __name__ == "__main__":
    main()
