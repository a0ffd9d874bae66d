"""Vision Transformers from timm: ``vit_tiny``, ``vit_base`` (ImageNet weights available) and ``vit_micro``.

Images under 64 px default to 4x4 patches (28 px -> 49 tokens, 32 px -> 64 tokens); larger ones to 16x16.
"""
from __future__ import annotations

import timm
from timm.models.vision_transformer import VisionTransformer

from .loading import download_guard
from .registry import register_model


def default_patch_size(image_size: int) -> int:
    """4 for small (< 64 px) images, 16 otherwise."""
    return 4 if image_size < 64 else 16


def _named(model: VisionTransformer) -> VisionTransformer:
    model.classifier_name = "head"
    model.stem_name = "patch_embed.proj"
    return model


def _timm_vit(name: str, arch: str, num_classes: int, in_channels: int, image_size: int, pretrained: bool,
              patch_size: int | None, drop_path_rate: float) -> VisionTransformer:
    kwargs = dict(num_classes=num_classes, img_size=image_size, in_chans=in_channels,
                  patch_size=patch_size or default_patch_size(image_size), drop_path_rate=drop_path_rate)
    if not pretrained:
        return _named(timm.create_model(arch, pretrained=False, **kwargs))
    with download_guard(name):   # timm resamples patch/position embeddings to the requested geometry
        return _named(timm.create_model(arch, pretrained=True, **kwargs))


@register_model("vit_tiny")
def vit_tiny(num_classes: int, in_channels: int, image_size: int, pretrained: bool = False,
             patch_size: int | None = None, drop_path_rate: float = 0.0) -> VisionTransformer:
    """timm ``vit_tiny_patch16_224`` (192-dim, 12 blocks, 3 heads) at ``image_size``."""
    return _timm_vit("vit_tiny", "vit_tiny_patch16_224", num_classes, in_channels, image_size, pretrained,
                     patch_size, drop_path_rate)


@register_model("vit_base")
def vit_base(num_classes: int, in_channels: int, image_size: int, pretrained: bool = False,
             patch_size: int | None = None, drop_path_rate: float = 0.0) -> VisionTransformer:
    """timm ``vit_base_patch16_224`` (768-dim, 12 blocks, 12 heads) at ``image_size``."""
    return _timm_vit("vit_base", "vit_base_patch16_224", num_classes, in_channels, image_size, pretrained,
                     patch_size, drop_path_rate)


@register_model("vit_micro")
def vit_micro(num_classes: int, in_channels: int, image_size: int, patch_size: int = 4,
              drop_path_rate: float = 0.0) -> VisionTransformer:
    """CPU-trainable ViT for proxy experiments: 64-dim, 4 blocks, 4 heads, MLP ratio 4, 4x4 patches."""
    return _named(VisionTransformer(img_size=image_size, patch_size=patch_size, in_chans=in_channels,
                                    num_classes=num_classes, embed_dim=64, depth=4, num_heads=4, mlp_ratio=4.0,
                                    drop_path_rate=drop_path_rate))
