"""Inference on new studies with a trained model: the travelling model folder (:mod:`.folder`),
``cinefm export`` (:mod:`.export`, model card in :mod:`.card`) and ``cinefm predict`` (:mod:`.predict`)."""
