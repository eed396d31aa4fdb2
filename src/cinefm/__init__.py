"""cinefm: vision-language foundation models for cine cardiac MRI and echo video."""

__version__ = "0.1.0"
