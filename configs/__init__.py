"""The suite's Hydra configs, shipped as package data: Hydra finds them as `pkg://longvid.configs`."""
