"""The engine composes datasets, backbones, noise nets, scorers and metrics into runs."""
