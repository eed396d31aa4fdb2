"""The video data layer: per-study HDF5 files -> clips and multi-view studies for training.

Modules:
  h5           lazy, per-process HDF5 reading and the series index of a study manifest
  temporal     uniform temporal subsampling to T frames
  transforms   resize/crop, normalisation, grayscale -> 3 channels (the clip pipeline)
  augment      AugMix-style chained spatial transforms, one parameter draw per clip
  text         k random report sentences -> one token sequence
  targets      fine-tuning targets from labels.csv
  seeding      per-item seeds from a sampler, worker seeding
  datasets     ClipDataset (pre-training) and StudyDataset (fine-tuning)
  collate      batching with padding and view masks
  datamodules  Lightning DataModules owning splits, datasets and loaders
"""
