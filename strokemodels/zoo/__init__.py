"""The model zoo: the papers' models and the rule baselines, registered by name (strokemodels.registry).

Each family module declares its models' specs and registers builders that import torch only when a
model is built: ``occlusion`` (Papakyriakou et al. 2025's networks) and ``baselines`` (the rules).
"""
