"""Training: LightningModules and the runs of the training rules.

Modules
-------
- ``pretrain``   ``PretrainModule`` (contrastive video–report pre-training of a CLIPModel,
                 kept as attribute ``model``) and ``run_pretraining`` (the ``pretrain`` rule:
                 train or resume, then embed the validation split).
- ``runs``       run folders, resume after preemption, precision per device, merged metrics.
- ``callbacks``  atomic checkpoint writes, last/periodic checkpoints, epoch log lines,
                 progress bars, optional TensorBoard/W&B loggers.
- ``experiments`` one fine-tuning setup per config/experiments/*.yaml.
- ``recipe``     ``FinetuneRecipe``/``resolve_recipe``: a fine-tuning run's settings, resolved once
                 (config task section -> experiment file -> cohort overrides), YAML round trip.
- ``objectives`` fine-tuning losses and metrics (pure functions).
- ``finetune_module`` ``FinetuneModule`` (with ``predict_step``), ``predict``, resume data order.
- ``initialization`` where the trunk's weights come from (clip, kinetics, random).
- ``finetune``   the run of the ``finetune`` rule: prepare, fit, evaluate, write outputs.
- ``optim``      optimizer and schedule specs named in recipes.
- ``cli``        ``cinefm pretrain``.

Nothing here moves tensors between devices or casts precision: the Trainer does.
"""
