"""Example Suanwang functions: a LightGBM training task and a PyTorch matrix product."""
