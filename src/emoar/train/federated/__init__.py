"""Federated learning on Flower (``emoar federated ...``): partitions, ServerApp/ClientApp, strategies, DP."""
