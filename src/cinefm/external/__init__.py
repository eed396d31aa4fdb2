"""Adapters for public datasets (EchoNet-Dynamic, ...) into the per-study HDF5 layout of ingestion."""
