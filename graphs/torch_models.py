"""Small PyTorch models shaped like the TS presets `gpt-tiny` and `vit-tiny` (graphs/gpt.ts, graphs/vit.ts), used to
test importing `torch.onnx.export` graphs (docs/interop.md).

They are written the way PyTorch models usually are, so the exported graphs hold what exporters really emit:
- GPT (nanoGPT-style): token + learned position embedding, pre-LN blocks, a GELU MLP (erf form), final LN and an LM
  head tied to the token embedding (one parameter used twice). Attention alternates per layer between the explicit
  form with a registered causal-mask buffer (`masked_fill`, exported as Where over a sliced buffer) and
  `F.scaled_dot_product_attention(is_causal=True)` (the exporter's decomposition, with a Trilu mask).
- ViT: Conv patch embedding, class token, position embedding, pre-LN encoder blocks with
  `F.scaled_dot_product_attention`, final LN and a Linear head on the class token (a 2-D Linear, exported as Gemm).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GptConfig:
    vocab_size: int = 128
    block_size: int = 64
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    mlp_ratio: int = 4


@dataclass
class VitConfig:
    image_size: int = 28
    patch_size: int = 7
    channels: int = 1
    num_classes: int = 10
    dim: int = 64
    depth: int = 2
    heads: int = 2
    mlp_ratio: int = 2


class CausalSelfAttention(nn.Module):
    def __init__(self, c: GptConfig, sdpa: bool):
        super().__init__()
        self.n_head, self.n_embd, self.sdpa = c.n_head, c.n_embd, sdpa
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd)
        if not sdpa:
            # nanoGPT's mask buffer: a registered (persistent) buffer, so it is in the state_dict but is no parameter
            self.register_buffer("bias", torch.tril(torch.ones(c.block_size, c.block_size)).view(1, 1, c.block_size, c.block_size))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hd = C // self.n_head
        q, k, v = (t.view(B, T, self.n_head, hd).transpose(1, 2) for t in (q, k, v))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class GptBlock(nn.Module):
    def __init__(self, c: GptConfig, sdpa: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd)
        self.attn = CausalSelfAttention(c, sdpa)
        self.ln_2 = nn.LayerNorm(c.n_embd)
        self.mlp = Mlp(c.n_embd, c.mlp_ratio * c.n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Gpt(nn.Module):
    # attention: 'alternate' (the exporter tests: explicit masked softmax and SDPA, layer by layer) or 'sdpa' (every
    # layer F.scaled_dot_product_attention, as nanoGPT runs it: the speed comparison's baseline)
    def __init__(self, c: GptConfig = GptConfig(), attention: str = "alternate"):
        super().__init__()
        self.config = c
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c.vocab_size, c.n_embd),
            wpe=nn.Embedding(c.block_size, c.n_embd),
            h=nn.ModuleList([GptBlock(c, sdpa=attention == "sdpa" or i % 2 == 1) for i in range(c.n_layer)]),
            ln_f=nn.LayerNorm(c.n_embd),
        ))
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.normal_(m.bias, 0.0, 0.02)  # non-zero, so bias gradients are not trivially checked at 0

    def forward(self, tokens):
        B, T = tokens.shape
        pos = torch.arange(0, T, dtype=torch.long, device=tokens.device)
        x = self.transformer.wte(tokens) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


class VitBlock(nn.Module):
    def __init__(self, c: VitConfig):
        super().__init__()
        self.heads = c.heads
        self.norm1 = nn.LayerNorm(c.dim)
        self.qkv = nn.Linear(c.dim, 3 * c.dim)
        self.proj = nn.Linear(c.dim, c.dim)
        self.norm2 = nn.LayerNorm(c.dim)
        self.mlp = Mlp(c.dim, c.mlp_ratio * c.dim)

    def forward(self, x):
        B, N, D = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        y = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(y.transpose(1, 2).reshape(B, N, D))
        return x + self.mlp(self.norm2(x))


class Vit(nn.Module):
    def __init__(self, c: VitConfig = VitConfig()):
        super().__init__()
        self.config = c
        n = (c.image_size // c.patch_size) ** 2
        self.patch_embed = nn.Conv2d(c.channels, c.dim, kernel_size=c.patch_size, stride=c.patch_size)
        self.cls_token = nn.Parameter(torch.randn(1, 1, c.dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, c.dim) * 0.02)
        self.blocks = nn.ModuleList([VitBlock(c) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.normal_(m.bias, 0.0, 0.02)

    def forward(self, images):
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # [B, N, D]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if name == "gpt":
        return Gpt()
    if name == "vit":
        return Vit()
    raise ValueError(f"unknown model '{name}' (have: gpt, vit)")


def example_inputs(name: str, batch: int = 2, seq: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    if name == "gpt":
        return (torch.randint(0, GptConfig.vocab_size, (batch, seq), generator=g),)
    c = VitConfig()
    return (torch.randn(batch, c.channels, c.image_size, c.image_size, generator=g),)
