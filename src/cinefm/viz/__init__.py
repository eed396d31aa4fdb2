"""Attention heat-map videos of the video encoder (``results/attention/{experiment}/``).

:mod:`~cinefm.viz.attention` captures the class-token self-attention of torchvision MViT
blocks and maps it from the token grid back onto the clip; :mod:`~cinefm.viz.videos`
overlays it on the grey clip and writes MP4, GIF and poster files for chosen test studies
of a fine-tuned experiment (``cinefm attention``, rule ``attention_videos``); :mod:`~cinefm.viz.support`
says which encoders qualify without importing torch. Imported lazily so that ``cinefm --help`` stays fast.
"""
