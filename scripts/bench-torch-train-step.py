"""PyTorch side of `bench train-step --compare-torch`: the same GPT (graphs/torch_models.py, SDPA attention in every
layer, as nanoGPT runs it) or ViT trained eagerly with torch.optim.AdamW (foreach), kept alive so the Node side can
alternate blocks of steps between the two frameworks within one run.

stdin, one JSON command per line:
  {"cmd": "init", "vocab": V, "block": T, "layers": L, "heads": H, "embd": C, "mlp": M, "batch": B, "seq": S, "threads": N}
  {"cmd": "init", "model": "vit", "image": I, "patch": P, "channels": C, "classes": K, "dim": D, "depth": L,
   "heads": H, "mlp": M, "batch": B, "threads": N}
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
from torch_models import Gpt, GptConfig, Vit, VitConfig  # noqa: E402


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
            if cmd.get("model") == "vit":
                model = Vit(VitConfig(image_size=cmd["image"], patch_size=cmd["patch"], channels=cmd["channels"],
                                      num_classes=cmd["classes"], dim=cmd["dim"], depth=cmd["depth"], heads=cmd["heads"],
                                      mlp_ratio=cmd["mlp"]))
            else:
                c = GptConfig(vocab_size=cmd["vocab"], block_size=cmd["block"], n_layer=cmd["layers"], n_head=cmd["heads"],
                              n_embd=cmd["embd"], mlp_ratio=cmd["mlp"])
                model = Gpt(c, attention="sdpa")
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, foreach=True)
            gen = torch.Generator().manual_seed(1)
            out = {"params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(), "torch": torch.__version__}
        elif cmd["cmd"] == "run":
            ms = []
            vit = cfg.get("model") == "vit"
            for _ in range(cmd["steps"]):
                if vit:
                    images = torch.randn(cfg["batch"], cfg["channels"], cfg["image"], cfg["image"], generator=gen)
                    labels = torch.randint(0, cfg["classes"], (cfg["batch"],), generator=gen)
                else:
                    x = torch.randint(0, cfg["vocab"], (cfg["batch"], cfg["seq"] + 1), generator=gen)
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                if vit:
                    loss = F.cross_entropy(model(images), labels)
                else:
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
