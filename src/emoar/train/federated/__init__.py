"""Federated learning on Flower (``emoar federated ...``): partitions, ServerApp/ClientApp, strategies, DP.

The choices below live here, where the CLI can read them without importing torch or flwr.
"""

#: ``--strategy`` values.
STRATEGIES = ("fedavg", "fedprox", "fedbn", "fedadam")
#: ``--optimizer`` values: the clients' local optimizer.
OPTIMIZERS = ("sgd", "adamw")
