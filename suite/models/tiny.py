"""Named tiny causal-LM configs for CPU work: `tiny-0.1M` ... `tiny-20M` (llama-style) and `qwen2-*`.

The name gives the non-embedding parameter count N (the scaling-law N: no token embedding, no LM head),
rounded; the exact count is derived once from the built model and stored in every result.
Shapes keep d_model / n_layers between 20 and 56 and ffn ≈ 8/3·d (gated MLP), as the Busbridge and
Chinchilla model families do at larger scale. Tokens/s on 2 CPU cores (fp32, batch 16×128, fwd+bwd+AdamW):
tiny-0.1M ≈ 43k, tiny-1M ≈ 15k, tiny-2M ≈ 10k, tiny-5M ≈ 4.3k, tiny-10M ≈ 2.2k, tiny-20M ≈ 1.2k.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..registry import Registry


@dataclass(frozen=True)
class TinyConfig:
    family: str            # "llama" | "qwen2" (qwen2: bias on q/k/v, grouped-query attention)
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    max_positions: int = 2048
    rope_theta: float = 10000.0
    tie_embeddings: bool = False

    def to_hf(self, vocab_size: int):
        """A transformers config for this shape and `vocab_size`."""
        from transformers import LlamaConfig, Qwen2Config

        common = dict(
            vocab_size=vocab_size,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            intermediate_size=self.ffn,
            max_position_embeddings=self.max_positions,
            rope_theta=self.rope_theta,
            tie_word_embeddings=self.tie_embeddings,
            rms_norm_eps=1e-5,
        )
        if self.family == "llama":
            return LlamaConfig(**common)
        if self.family == "qwen2":
            return Qwen2Config(**common, use_sliding_window=False)
        raise ValueError(f"unknown tiny family {self.family!r}; valid: llama, qwen2")


TINY = Registry[TinyConfig]("tiny model")

# name: (hidden, layers, heads, ffn); N = layers·(4·d² + 3·d·ffn + 2d) for llama with full MHA
_SHAPES = {
    "0.007M": (24, 1, 2, 64),     # N =     6,984    (the scaling-law lab's ladder fills in 0.007M, 0.05M, 0.2M)
    "0.01M": (32, 1, 2, 64),      # N =    10,336   (capacity-limited on the synthetic language: N matters)
    "0.02M": (40, 1, 2, 108),     # N =    19,480   (one layer: in the lab, a second layer at width 32 added little)
    "0.03M": (32, 2, 2, 86),      # N =    24,864
    "0.05M": (48, 2, 4, 128),     # N =    55,536
    "0.1M": (64, 2, 4, 172),      # N =    99,136
    "0.2M": (80, 3, 4, 216),      # N =   232,880
    "0.5M": (96, 4, 4, 256),      # N =   443,232
    "1M": (128, 5, 4, 344),       # N =   989,568
    "2M": (160, 6, 4, 432),       # N = 1,860,640
    "5M": (256, 6, 4, 688),       # N = 4,746,496
    "10M": (320, 8, 5, 864),      # N = 9,917,760
    "20M": (448, 8, 7, 1200),     # N = 19,332,544
}
for _size, (_d, _l, _h, _f) in _SHAPES.items():
    TINY.register(f"tiny-{_size}", TinyConfig("llama", _d, _l, _h, _h, _f))
    # qwen2 flavour: same widths, GQA with kv_heads = heads/2 where divisible, q/k/v bias
    _kv = _h // 2 if _h % 2 == 0 else _h
    TINY.register(f"qwen2-{_size}", TinyConfig("qwen2", _d, _l, _h, _kv, _f))


def tiny_config(name: str) -> TinyConfig:
    return TINY.get(name)


def describe(name: str) -> dict:
    return {"name": name, **asdict(TINY.get(name))}


# ---- tiny vision-language models (built by models/vlm.py; here so that a name check needs no transformers)

@dataclass(frozen=True)
class TinyVLMConfig:
    family: str               # llava | qwen2vl | internvl
    hidden: int               # language model width
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    image_size: int           # llava, internvl: square input side; qwen2vl: resized side (multiple of 28)
    patch: int


TINY_VLMS = Registry[TinyVLMConfig]("tiny VLM")
# llava: (32/8)² = 16 image tokens; qwen2vl: 56/14 = 4 patches a side, merged 2×2 -> 4 image tokens;
# internvl: (32/8)² = 16 patches, pixel-shuffled by 0.5 -> 4 image tokens (plus <img> ... </img>)
TINY_VLMS.register("tiny-llava", TinyVLMConfig("llava", 64, 2, 4, 4, 172, 32, 1, 2, 32, 8))
TINY_VLMS.register("tiny-llava-m", TinyVLMConfig("llava", 128, 4, 4, 4, 344, 64, 2, 4, 32, 8))
TINY_VLMS.register("tiny-qwen2vl", TinyVLMConfig("qwen2vl", 64, 2, 4, 2, 172, 32, 1, 2, 56, 14))
TINY_VLMS.register("tiny-qwen2vl-m", TinyVLMConfig("qwen2vl", 128, 4, 4, 2, 344, 64, 2, 4, 56, 14))
TINY_VLMS.register("tiny-internvl", TinyVLMConfig("internvl", 64, 2, 4, 2, 172, 32, 1, 2, 32, 8))
