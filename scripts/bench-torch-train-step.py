"""PyTorch side of `bench train-step --compare-torch`: the same GPT (graphs/torch_models.py, SDPA attention in every
layer, as nanoGPT runs it) trained eagerly with torch.optim.AdamW (foreach), kept alive so the Node side can
alternate blocks of steps between the two frameworks within one run.

stdin, one JSON command per line:
  {"cmd": "init", "vocab": V, "block": T, "layers": L, "heads": H, "embd": C, "mlp": M, "batch": B, "seq": S, "threads": N}
  {"cmd": "run", "steps": K}      -> {"ms": [K step times]}
  {"cmd": "exit"}
stdout: one JSON line per command.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "graphs"))
from torch_models import Gpt, GptConfig  # noqa: E402


def main() -> None:
    model = opt = gen = None
    cfg = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "init":
            cfg = cmd
            if cmd["threads"] > 0:
                torch.set_num_threads(cmd["threads"])
            torch.manual_seed(0)
            c = GptConfig(vocab_size=cmd["vocab"], block_size=cmd["block"], n_layer=cmd["layers"], n_head=cmd["heads"],
                          n_embd=cmd["embd"], mlp_ratio=cmd["mlp"])
            model = Gpt(c, attention="sdpa")
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, foreach=True)
            gen = torch.Generator().manual_seed(1)
            out = {"params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(), "torch": torch.__version__}
        elif cmd["cmd"] == "run":
            ms = []
            for _ in range(cmd["steps"]):
                x = torch.randint(0, cfg["vocab"], (cfg["batch"], cfg["seq"] + 1), generator=gen)
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                logits = model(x[:, :-1])
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
                loss.backward()
                opt.step()
                ms.append((time.perf_counter() - t0) * 1e3)
            out = {"ms": ms}
        else:
            return
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
