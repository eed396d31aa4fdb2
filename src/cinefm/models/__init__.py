"""Model components: video and text encoders, contrastive loss, multi-view MIL, study heads.

Modules
-------
- ``video``      ``build_video_encoder(name, **cfg)``: MViT-B, small MViT, R(2+1)D-18, Perceiver IO.
- ``perceiver``  the Perceiver IO video encoder and its Fourier position features.
- ``weights``    resolving and loading local pre-trained state dicts (no model hubs).
- ``text``       ``build_text_encoder``: BERT from a local directory or a config.
- ``clip``       ``asymmetric_info_nce``, ``flood`` and ``CLIPModel`` (video + text + projections).
- ``mil``        ``GatedAttentionMIL`` over the view embeddings of a study.
- ``heads``      ``StudyModel`` (encoder → projection → MIL → head), training modes and
                 loading the contrastive checkpoint's video path.

Nothing here knows about devices, precision or ranks (the Lightning Trainer does).
"""
