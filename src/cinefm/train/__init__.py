"""Training: LightningModules and the runs of the training rules.

Modules
-------
- ``pretrain``   ``PretrainModule`` (contrastive video–report pre-training of a CLIPModel,
                 kept as attribute ``model``) and ``run_pretraining`` (the ``pretrain`` rule:
                 train or resume, then embed the validation split).
- ``runs``       run folders, resume after preemption, precision per device, merged metrics.
- ``callbacks``  atomic checkpoint writes, last/periodic checkpoints, epoch log lines,
                 progress bars, optional TensorBoard/W&B loggers.
- ``finetune``   fine-tuning / transfer learning of the study model (the ``finetune`` rule).
- ``experiments`` one fine-tuning setup per config/experiments/*.yaml.
- ``cli``        ``cinefm pretrain``.

Nothing here moves tensors between devices or casts precision: the Trainer does.
"""
