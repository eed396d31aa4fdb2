"""Which video encoders have attention to draw, decided from the encoder's name (no torch import).

The workflow calls :func:`check_supported` while the DAG is built, so a configuration asking
for heat-map videos of an encoder without class-token self-attention fails before any job runs.
"""

from __future__ import annotations

SUPPORTED = ("mvit_v1_b", "mvit_small")
WHY_NOT = {
    "r2plus1d_18": "R(2+1)D-18 is a convolutional network: it has no self-attention to show "
                   "(use an MViT trunk, mvit_v1_b or mvit_small)",
    "perceiver_io": "the Perceiver IO encoder has no class token attending to patches: its latents "
                    "cross-attend to Fourier-encoded input tubelets and are averaged, so there is no "
                    "class-token-to-patch attention to draw (use an MViT trunk, mvit_v1_b or mvit_small)",
}


class AttentionUnavailable(ValueError):
    """The encoder has no class-token self-attention over patches (the message says why)."""


def check_supported(name: str) -> None:
    """Raise :class:`AttentionUnavailable` unless encoder ``name`` is an MViT trunk."""
    if name in SUPPORTED:
        return
    why = WHY_NOT.get(name, "only MViT trunks (mvit_v1_b, mvit_small) have a class token attending to patch tokens")
    raise AttentionUnavailable(f"attention videos: encoder {name!r} is not supported — {why}")
