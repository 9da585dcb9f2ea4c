"""Vision-language models: tiny random configs of three families for CPU work, real checkpoints, one generate().

    vlm = build_vlm("tiny-llava", tokenizer=tok, seed=0)         # LLaVA: CLIP tower + projector + Llama
    vlm = build_vlm("tiny-qwen2vl", tokenizer=tok, seed=0)       # Qwen2-VL: patch-merging ViT + M-RoPE decoder
    vlm = build_vlm("tiny-internvl", tokenizer=tok, seed=0)      # InternVL (-hf): ViT + pixel shuffle + MLP + Qwen2
    vlm = build_vlm("Qwen/Qwen2-VL-2B-Instruct", dtype="bf16")   # any AutoModelForImageTextToText id or path
    vlm.generate([([image], "What shape is red?")], max_new_tokens=16)   # -> ["circle"]
    vlm.save("runs/x/model")                                     # safetensors + processor; build_vlm(path) loads it

Generation is batched with left padding (the processor's tokenizer pads on the left, the attention mask and
the position ids follow it), greedy unless told otherwise. Tiny tokenizers get the family's special tokens
(`<image>`; `<|vision_start|>`, `<|image_pad|>`, ...) and a chat template of the family's shape, so prompts
pass through the same `apply_chat_template` path as a real checkpoint's.

Qwen2-VL's and InternVL's stock processors also own a video processor, which transformers builds only with
torchvision; `ImageOnlyQwen2VLProcessor` / `ImageOnlyInternVLProcessor` are the same processors without it (used
when torchvision is absent).
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .io import save_pretrained
from .loading import DTYPES, quiet_local_load
from .tiny import TINY_VLMS, TinyVLMConfig

Sample = tuple[Sequence[Any], str]  # (PIL images, prompt text)



_LLAVA_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}USER: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {% for c in m['content'] %}{{ c['text'] }}{% endfor %}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")
_QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
_QWEN_SPECIAL = ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>")
# InternVL-hf checkpoints' template: an image is one <IMG_CONTEXT> the processor expands to <img><IMG_CONTEXT>*n</img>
_INTERNVL_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<IMG_CONTEXT>\n{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
_INTERNVL_TOKENS = {"start_image_token": "<img>", "end_image_token": "</img>",
                    "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
_INTERNVL_SPECIAL = (*_INTERNVL_TOKENS.values(), "<|im_start|>", "<|im_end|>")


def _image_only_qwen2vl_processor():
    from transformers import Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        """Qwen2VLProcessor without its video processor (which needs torchvision)."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return ImageOnlyQwen2VLProcessor


def _image_only_internvl_processor():
    from transformers import InternVLProcessor
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyInternVLProcessor(InternVLProcessor):
        """InternVLProcessor without its video processor (which needs torchvision); its image tokens are set
        here rather than read from tokenizer attributes, so any tokenizer holding them as tokens will do."""

        def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 256, chat_template=None,
                     **kwargs):
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
            self.image_seq_length = image_seq_length
            self.start_image_token, self.end_image_token = _INTERNVL_TOKENS["start_image_token"], \
                _INTERNVL_TOKENS["end_image_token"]
            self.image_token, self.video_token = _INTERNVL_TOKENS["context_image_token"], \
                _INTERNVL_TOKENS["video_token"]
            self.start_image_token_id = tokenizer.convert_tokens_to_ids(self.start_image_token)
            self.end_image_token_id = tokenizer.convert_tokens_to_ids(self.end_image_token)
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.multimodal_pattern = re.compile(
                f"(?P<image>{re.escape(self.image_token)})|(?P<video>{re.escape(self.video_token)})")

    return ImageOnlyInternVLProcessor


def _tiny_llava(cfg: TinyVLMConfig, tok):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    side = {"height": cfg.image_size, "width": cfg.image_size}
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": cfg.image_size}, crop_size=side)
    # the CLIP tower emits CLS + patches; "default" drops CLS, so one extra token is counted then removed
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=cfg.patch,
                               vision_feature_select_strategy="default", chat_template=_LLAVA_TEMPLATE,
                               num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=cfg.vision_hidden, intermediate_size=4 * cfg.vision_hidden,
                                       num_hidden_layers=cfg.vision_layers, num_attention_heads=cfg.vision_heads,
                                       image_size=cfg.image_size, patch_size=cfg.patch),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=cfg.hidden, intermediate_size=cfg.ffn,
                                num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                                num_key_value_heads=cfg.kv_heads, max_position_embeddings=2048,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                pad_token_id=tok.pad_token_id),
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
        vision_feature_layer=-1)
    return LlavaForConditionalGeneration(config), processor


def _tiny_qwen2vl(cfg: TinyVLMConfig, tok):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok.add_special_tokens({"additional_special_tokens": list(_QWEN_SPECIAL)})
    ids = {t: tok.convert_tokens_to_ids(t) for t in _QWEN_SPECIAL}
    pixels = cfg.image_size * cfg.image_size  # min = max: every image becomes image_size², a fixed token count
    image_processor = Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels, patch_size=cfg.patch,
                                               merge_size=2, temporal_patch_size=2)
    processor = _image_only_qwen2vl_processor()(image_processor=image_processor, tokenizer=tok,
                                                chat_template=_QWEN_TEMPLATE)
    head_dim = cfg.hidden // cfg.heads
    section = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]  # temporal / height / width rotary halves
    section[0] += head_dim // 2 - sum(section)
    config = Qwen2VLConfig(
        vision_config=dict(depth=cfg.vision_layers, embed_dim=cfg.vision_hidden, hidden_size=cfg.hidden,
                           num_heads=cfg.vision_heads, mlp_ratio=4, patch_size=cfg.patch, spatial_merge_size=2,
                           temporal_patch_size=2, in_channels=3),
        text_config=dict(vocab_size=len(tok), hidden_size=cfg.hidden, intermediate_size=cfg.ffn,
                         num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                         num_key_value_heads=cfg.kv_heads, max_position_embeddings=2048,
                         rope_scaling={"type": "mrope", "mrope_section": section},
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return Qwen2VLForConditionalGeneration(config), processor


def _tiny_internvl(cfg: TinyVLMConfig, tok):
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, Qwen2Config
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    tok.add_special_tokens({"additional_special_tokens": list(_INTERNVL_SPECIAL)})
    # named too (tok.start_image_token, tok.context_image_token_id, ...; saved in tokenizer_config.json) as the
    # -hf checkpoints' tokenizers have them: the stock InternVLProcessor reads them when torchvision is present
    tok._set_model_specific_special_tokens(dict(_INTERNVL_TOKENS))
    downsample = 0.5  # pixel shuffle: 2×2 neighbouring patches -> one token
    seq = int((cfg.image_size // cfg.patch) ** 2 * downsample ** 2)
    # max_patches 1: no tiling whatever the processor's crop_to_patches default, so a fixed token count an image
    image_processor = GotOcr2ImageProcessorPil(size={"height": cfg.image_size, "width": cfg.image_size},
                                               crop_to_patches=False, min_patches=1, max_patches=1)
    processor = _image_only_internvl_processor()(image_processor=image_processor, tokenizer=tok,
                                                 image_seq_length=seq, chat_template=_INTERNVL_TEMPLATE)
    config = InternVLConfig(
        vision_config=InternVLVisionConfig(hidden_size=cfg.vision_hidden, intermediate_size=4 * cfg.vision_hidden,
                                           num_hidden_layers=cfg.vision_layers,
                                           num_attention_heads=cfg.vision_heads, image_size=cfg.image_size,
                                           patch_size=cfg.patch),
        text_config=Qwen2Config(vocab_size=len(tok), hidden_size=cfg.hidden, intermediate_size=cfg.ffn,
                                num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                                num_key_value_heads=cfg.kv_heads, max_position_embeddings=2048,
                                tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_id=tok.convert_tokens_to_ids(_INTERNVL_TOKENS["context_image_token"]), image_seq_length=seq,
        downsample_ratio=downsample, tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return InternVLForConditionalGeneration(config), processor


_TINY_BUILDERS = {"llava": _tiny_llava, "qwen2vl": _tiny_qwen2vl, "internvl": _tiny_internvl}
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # owner/name


@dataclass
class QABatch:
    """Right-padded [question ; answer] rows: model inputs, lengths, and answer ids (IGNORE past each answer)."""
    inputs: dict
    q_len: torch.Tensor
    a_len: torch.Tensor
    labels: torch.Tensor        # [B, max a_len]


class VLM:
    """A vision-language model with its processor: batched generation, saving, and family facts."""

    def __init__(self, model, processor, name: str = ""):
        self.model = model
        self.processor = processor
        self.name = name or getattr(model, "name_or_path", "") or type(model).__name__
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.family = str(model.config.model_type)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def messages(self, n_images: int, prompt: str) -> list[dict]:
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": prompt}]
        return [{"role": "user", "content": content}]

    def chat_text(self, n_images: int, prompt: str) -> str:
        return self.processor.apply_chat_template(self.messages(n_images, prompt), add_generation_prompt=True)

    def inputs(self, batch: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """Processor outputs for a batch, left-padded, on the model's device."""
        texts = [self.chat_text(len(images), prompt) for images, prompt in batch]
        images = [im.convert("RGB") for ims, _ in batch for im in ims]
        self.tokenizer.padding_side = "left"  # generation appends on the right: pads must not sit between
        enc = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        return {k: self._to_model(v) for k, v in enc.items()}

    def _to_model(self, v: torch.Tensor) -> torch.Tensor:
        """On the model's device; floating inputs (pixels) in the model's dtype."""
        if torch.is_floating_point(v):
            return v.to(self.device, next(self.model.parameters()).dtype)
        return v.to(self.device)

    def encode_qa(self, batch: Sequence[tuple[Sequence[Any], str, str]], max_answer_tokens: int | None = None,
                  answer_ids: Sequence[Sequence[int]] | None = None) -> QABatch:
        """Training inputs for (images, question, answer) triples: [chat question ; answer + eos], right-padded.

        The question goes through the processor (chat template, image tokens expanded) and the answer through
        the tokenizer alone, so the split point is exact whatever merges BPE would make across it.
        `answer_ids`: token ids to put after each question verbatim instead of the answers (no eos added, no
        truncation): sampled answers, or a prefix while sampling (on-policy methods, vlm/onpolicy.py).
        """
        from ..methods.chunked import IGNORE_INDEX

        tok = self.tokenizer
        eos = tok.eos_token_id
        rows, per_token, extra = [], {}, {}
        for b, (images, question, answer) in enumerate(batch):
            enc = self.processor(text=[self.chat_text(len(images), question)],
                                 images=[im.convert("RGB") for im in images] or None, return_tensors="pt")
            ans = list(answer_ids[b]) if answer_ids is not None else self.answer_ids(answer, max_answer_tokens)
            rows.append((enc["input_ids"][0], torch.tensor(ans, dtype=torch.long)))
            n_q = enc["input_ids"].shape[1]
            for k, v in enc.items():
                if k in ("input_ids", "attention_mask"):
                    continue
                if v.dim() == 2 and v.shape == (1, n_q):  # per-token ids (Qwen2-VL's mm_token_type_ids): text = 0
                    per_token.setdefault(k, []).append(v[0])
                else:
                    extra.setdefault(k, []).append(v)
        q_len = torch.tensor([len(q) for q, _ in rows])
        a_len = torch.tensor([len(a) for _, a in rows])
        L, La = int((q_len + a_len).max()), max(int(a_len.max()), 1)  # empty prefixes: one label column
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        ids = torch.full((len(rows), L), pad, dtype=torch.long)
        mask = torch.zeros(len(rows), L, dtype=torch.long)
        labels = torch.full((len(rows), La), IGNORE_INDEX, dtype=torch.long)
        for b, (q, a) in enumerate(rows):
            ids[b, :len(q) + len(a)] = torch.cat([q, a])
            mask[b, :len(q) + len(a)] = 1
            labels[b, :len(a)] = a
        inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        for k, vs in per_token.items():
            t = torch.zeros(len(rows), L, dtype=vs[0].dtype)
            for b, v in enumerate(vs):
                t[b, :len(v)] = v
            inputs[k] = t.to(self.device)
        for k, vs in extra.items():  # LLaVA: [n, 3, H, W] per image; Qwen2-VL: flattened patches + grid rows
            v = torch.cat(vs)
            inputs[k] = self._to_model(v)
        return QABatch(inputs, q_len.to(self.device), a_len.to(self.device), labels.to(self.device))

    def hidden(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Final normed hidden states of the language model [B, L, H] (what the LM head reads)."""
        return self.model.model(**inputs, use_cache=False).last_hidden_state

    @contextlib.contextmanager
    def positions(self):
        """Inside the block, forwards record the language model's own 1-D position ids: `box["ids"]` [B, L]
        after the block. M-RoPE ids ([3, B, L], or [4, B, L] with a text row first) collapse to their temporal
        row; a model that passes none (LLaVA, InternVL: the LM counts 0..L-1) gets 0..L-1, which is right for
        the right-padded rows of encode_qa."""
        box: dict[str, Any] = {}

        def hook(module, args, kwargs):
            p = kwargs.get("position_ids")
            emb = kwargs.get("inputs_embeds")
            B, L = emb.shape[:2] if emb is not None else kwargs["input_ids"].shape
            if p is None:
                p = torch.arange(L, device=self.device)
            elif p.dim() == 3:
                p = p[1] if p.shape[0] == 4 else p[0]
            box["ids"] = p.expand(B, L)

        handle = self.language_model.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield box
        finally:
            handle.remove()

    def hidden_pair(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(states entering the final norm, final normed states) [B, L, H], from one forward."""
        box = {}
        hook = self.language_model.norm.register_forward_pre_hook(lambda m, args: box.__setitem__("pre", args[0]))
        try:
            post = self.hidden(inputs)
        finally:
            hook.remove()
        return box["pre"], post

    @property
    def head_weight(self) -> torch.Tensor:
        return self.model.get_output_embeddings().weight

    @property
    def language_model(self) -> torch.nn.Module:
        """The decoder stack (the "VLM-body" GenRecal trains in stage 2)."""
        return self.model.model.language_model

    @property
    def vision_tower(self) -> torch.nn.Module:
        inner = self.model.model
        return getattr(inner, "vision_tower", None) or getattr(inner, "visual", None)

    @torch.no_grad()
    def generate(self, batch: Sequence[Sample], max_new_tokens: int = 32, **gen_kwargs: Any) -> list[str]:
        """Decoded continuations, one per sample (special tokens skipped, whitespace stripped)."""
        if not batch:
            return []
        return [self.tokenizer.decode(ids, skip_special_tokens=True).strip()
                for ids in self.generate_ids(batch, max_new_tokens, **gen_kwargs)]

    def answer_ids(self, answer: str, max_answer_tokens: int | None = None) -> list[int]:
        """An answer as training tokens: tokenized alone, cut at max_answer_tokens, then EOS."""
        tok = self.tokenizer
        return tok(answer, add_special_tokens=False)["input_ids"][:max_answer_tokens] + [tok.eos_token_id]

    @property
    def stop_ids(self) -> list[int]:
        """Every token that ends a reply: the checkpoint's generation_config lists them (Llama-3 based models:
        <|eot_id|> besides the tokenizer's eos; the tokenizer's eos alone would let those replies run on)."""
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        eos = self.tokenizer.eos_token_id if eos is None else eos
        return list(eos) if isinstance(eos, (list, tuple)) else [eos]

    @torch.no_grad()
    def generate_ids(self, batch: Sequence[Sample], max_new_tokens: int = 32, **gen_kwargs: Any) -> list[list[int]]:
        """New token ids per sample, up to and including the first end-of-reply token (pads dropped)."""
        if not batch:
            return []
        was_training = self.model.training
        self.model.eval()
        enc = self.inputs(batch)
        tok = self.tokenizer
        stops = self.stop_ids
        kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                      eos_token_id=stops if len(stops) > 1 else stops[0])
        kwargs.update(gen_kwargs)
        if not kwargs.get("do_sample"):
            kwargs.update(temperature=None, top_p=None, top_k=None)  # silence "ignored sampling flags" warnings
        try:
            out = self.model.generate(**enc, **kwargs)
        finally:
            self.model.train(was_training)
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        rows = []
        for ids in new:  # generate pads a finished row after its end token: cut there
            end = next((i for i, t in enumerate(ids) if t in stops), None)
            rows.append(ids if end is None else ids[:end + 1])
        return rows

    @torch.no_grad()
    def fingerprint(self) -> str:
        """16 hex chars over every parameter's name, shape, sum and absolute sum: changes when the weights do
        (retraining into the same directory), costs one pass over the weights (seconds for 7B on a CPU)."""
        import hashlib

        h = hashlib.sha256()
        for name, p in self.model.named_parameters():
            x = p.detach().float()
            h.update(f"{name}{tuple(p.shape)}{x.sum().item():.9e}{x.abs().sum().item():.9e}".encode())
        return h.hexdigest()[:16]

    def save(self, out_dir: str | Path) -> Path:
        return save_pretrained(self.model, out_dir, tokenizer=self.processor)


def build_vlm(spec: str, tokenizer=None, seed: int | None = None, dtype: str | None = None) -> VLM:
    """A tiny VLM built from scratch around `tokenizer` (a copy gets the family's special tokens), or a
    checkpoint (local path or Hugging Face id) with its processor."""
    torch_dtype = DTYPES[dtype] if dtype else None
    if spec in TINY_VLMS:
        if tokenizer is None:
            raise ValueError(f"building {spec!r} from scratch needs a tokenizer")
        cfg = TINY_VLMS.get(spec)
        if seed is not None:
            torch.manual_seed(seed)
        model, processor = _TINY_BUILDERS[cfg.family](cfg, copy.deepcopy(tokenizer))
        if torch_dtype:
            model = model.to(torch_dtype)
        return VLM(model.eval(), processor, name=spec)
    return load_vlm(spec, dtype=dtype)


def load_vlm(spec: str, dtype: str | None = None) -> VLM:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(os.path.expanduser(spec))
    looks_local = spec.startswith((".", "/", "~")) or path.exists()
    if looks_local and not (path / "config.json").exists():
        raise FileNotFoundError(f"VLM {spec!r}: no config.json in {path.resolve()}; tiny names: "
                                f"{', '.join(TINY_VLMS.names())}")
    where = str(path) if looks_local else spec
    kwargs = {"dtype": DTYPES[dtype]} if dtype else {}
    with quiet_local_load(looks_local):
        model = AutoModelForImageTextToText.from_pretrained(where, **kwargs)
    if model.config.model_type == "qwen2_vl" and importlib.util.find_spec("torchvision") is None:
        from transformers import AutoTokenizer
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        tok = AutoTokenizer.from_pretrained(where)
        processor = _image_only_qwen2vl_processor()(image_processor=Qwen2VLImageProcessorPil.from_pretrained(where),
                                                    tokenizer=tok, chat_template=tok.chat_template)
    elif model.config.model_type == "internvl" and importlib.util.find_spec("torchvision") is None:
        from transformers import AutoTokenizer
        from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

        tok = AutoTokenizer.from_pretrained(where)
        processor = _image_only_internvl_processor()(image_processor=GotOcr2ImageProcessorPil.from_pretrained(where),
                                                     tokenizer=tok, image_seq_length=model.config.image_seq_length,
                                                     chat_template=tok.chat_template)
    else:
        processor = AutoProcessor.from_pretrained(where)
    return VLM(model.eval(), processor, name=spec)


def is_vlm(spec: str) -> bool:
    """A tiny VLM name, or a checkpoint (a local directory, or a hub id) whose config is a vision-language model."""
    if spec in TINY_VLMS:
        return True
    path = Path(os.path.expanduser(spec))
    if (path / "config.json").exists():
        import json

        cfg = json.loads((path / "config.json").read_text())
        return "vision_config" in cfg
    if spec.startswith((".", "/", "~")) or path.exists() or not _HUB_ID.fullmatch(spec):
        return False  # a local path without a config, or a tiny text-model name: nothing to look up
    # a hub id ("Qwen/Qwen2-VL-2B-Instruct"): its config, from the HF cache or the hub (the model load that
    # follows needs the same access); without this check a hub VLM would be loaded as a text-only LM
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(spec)
    except (OSError, ValueError):
        return False
    return getattr(cfg, "vision_config", None) is not None
