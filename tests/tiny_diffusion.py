"""Tiny random-weight diffusers model directories, built in code (no hub download).

The components are the diffusers test suite's own tiny configurations (a 2-layer Wan
transformer with 12-dim heads, a base_dim=3 Wan VAE, a one-layer LTX transformer...), a
tiny T5 encoder from a `T5Config`, and a byte-level tokenizer made with the `tokenizers`
library. Each builder writes a directory the way `save_pretrained` writes a real model
(model_index.json plus one folder per component), which is exactly what the engines'
`model_dir` option expects: the engines cannot tell these from real weights, only that
they are small and make noise.

    python -m tests.tiny_diffusion DIR [wan-ti2v|wan-i2v|wan-t2v|ltx|ltx-condition]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# The tiny text encoder's width (T5 d_model): the transformers' text_dim/caption_channels.
TEXT_DIM = 32
SPECIALS = ("<pad>", "</s>", "<unk>")


def tokenizer(max_length: int = 512) -> Any:
    """A byte-level BPE tokenizer with no merges (every byte is a token), built offline
    and wrapped as a transformers fast tokenizer: any prompt encodes, different prompts
    give different ids, and `</s>` ends each sequence as T5's does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate((*SPECIALS, *alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def text_encoder(umt5: bool = False) -> Any:
    """A 2-layer T5 encoder (Wan's is UMT5, LTX-Video's T5: same shapes here)."""
    import torch
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    config_cls, model_cls = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config, T5EncoderModel)
    config = config_cls(
        vocab_size=len(SPECIALS) + 256,
        d_model=TEXT_DIM,
        d_ff=37,
        d_kv=8,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    return model_cls(config).eval()


def _wan_transformer(in_channels: int, out_channels: int, seed: int) -> Any:
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=out_channels,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )


def _wan_scheduler() -> Any:
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )


def wan_ti2v(model_dir: Path) -> Path:
    """Wan 2.2 TI2V-5B's layout: one 48-channel transformer, the residual z=48 VAE with
    16x spatial compression, `expand_timesteps` (text- and image-to-video)."""
    import torch
    from diffusers import AutoencoderKLWan, WanPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
        latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1],
        num_res_blocks=1, scale_factor_spatial=16, scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )  # fmt: skip
    pipe = WanPipeline(
        tokenizer=tokenizer(),
        text_encoder=text_encoder(umt5=True),
        vae=vae,
        scheduler=_wan_scheduler(),
        transformer=_wan_transformer(48, 48, 0),
        transformer_2=None,
        boundary_ratio=None,
        expand_timesteps=True,
    )
    pipe.save_pretrained(model_dir)
    return model_dir


def _wan_vae16() -> Any:
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )  # fmt: skip


def wan_i2v(model_dir: Path) -> Path:
    """Wan 2.2 I2V-A14B's layout: two transformers (high- and low-noise experts, split at
    `boundary_ratio`), 36 input channels (noise + mask + the encoded first/last frames),
    no CLIP image encoder. Serves image-to-video and first+last frame."""
    from diffusers import WanImageToVideoPipeline

    pipe = WanImageToVideoPipeline(
        tokenizer=tokenizer(),
        text_encoder=text_encoder(umt5=True),
        vae=_wan_vae16(),
        scheduler=_wan_scheduler(),
        transformer=_wan_transformer(36, 16, 0),
        transformer_2=_wan_transformer(36, 16, 1),
        image_encoder=None,
        image_processor=None,
        boundary_ratio=0.875,
    )
    pipe.save_pretrained(model_dir)
    return model_dir


def wan_t2v(model_dir: Path) -> Path:
    """Wan 2.1 T2V's layout: one 16-channel transformer, text-to-video only."""
    from diffusers import WanPipeline

    pipe = WanPipeline(
        tokenizer=tokenizer(),
        text_encoder=text_encoder(umt5=True),
        vae=_wan_vae16(),
        scheduler=_wan_scheduler(),
        transformer=_wan_transformer(16, 16, 0),
    )
    pipe.save_pretrained(model_dir)
    return model_dir


def ltx(model_dir: Path, condition: bool = True) -> Path:
    """LTX-Video's layout with the diffusers tests' tiny sizes; saved as an
    `LTXConditionPipeline` (0.9.5 and later: keyframes anywhere, so first+last too) or
    as a plain `LTXPipeline` (0.9.0/0.9.1: text- and image-to-video)."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
        attention_head_dim=8, cross_attention_dim=32, num_layers=1, caption_channels=TEXT_DIM,
    )  # fmt: skip
    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False), upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False, patch_size=1, patch_size_t=1, encoder_causal=True,
        decoder_causal=False,
    )  # fmt: skip
    cls = LTXConditionPipeline if condition else LTXPipeline
    pipe = cls(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder(),
        tokenizer=tokenizer(128),
        transformer=transformer,
    )
    pipe.save_pretrained(model_dir)
    return model_dir


BUILDERS = {
    "wan-ti2v": wan_ti2v,
    "wan-i2v": wan_i2v,
    "wan-t2v": wan_t2v,
    "ltx": lambda d: ltx(d, condition=False),
    "ltx-condition": ltx,
}


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in BUILDERS:
        raise SystemExit(f"usage: python -m tests.tiny_diffusion DIR [{'|'.join(BUILDERS)}]")
    print(BUILDERS[argv[1]](Path(argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
