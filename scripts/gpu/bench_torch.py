"""torch.optim.AdamW on GPT-2 124M's parameter list (148 float32 tensors, 124,439,808 parameters), timed like
scripts/gpu/bench.cu: CUDA events around optimizer.step(), median (and min) of --reps (at least 30) after warm-up.
fused=True is the reference the issue names; foreach=True is printed beside it. The update is in place (compare with
bench.cu's "in place" rows). One JSON object per line on stdout."""
import argparse
import json

import torch


def gpt2_sizes():
    d = 768
    sizes = [50257 * d, 1024 * d]
    for _ in range(12):
        sizes += [d, d, d * 3 * d, 3 * d, d * d, d, d, d, d * 4 * d, 4 * d, 4 * d * d, d]
    sizes += [d, d]
    return sizes


def time_step(opt, reps):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(5):
        opt.step()
    torch.cuda.synchronize()
    ms = []
    for _ in range(reps):
        start.record()
        opt.step()
        end.record()
        end.synchronize()
        ms.append(start.elapsed_time(end))
    ms.sort()
    return ms[len(ms) // 2], ms[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=50)
    reps = max(30, ap.parse_args().reps)
    sizes = gpt2_sizes()
    assert len(sizes) == 148 and sum(sizes) == 124439808
    params = [torch.randn(n, device="cuda") for n in sizes]
    for p in params:
        p.grad = torch.randn_like(p)
    n = sum(sizes)
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "tensors": len(sizes), "params": n}))
    for variant in ({"fused": True}, {"foreach": True}):
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1, **variant)
        med, best = time_step(opt, reps)
        # read param, grad, m, v; write param, m, v: 28 bytes per parameter
        print(json.dumps({"op": "torch.optim.AdamW", "variant": next(iter(variant)), "outputs": "in place", "bytes_per_param": 28,
                          "ms_median": round(med, 4), "ms_min": round(best, 4), "gb_per_s": round(28 * n / med / 1e6, 1)}))


if __name__ == "__main__":
    main()
