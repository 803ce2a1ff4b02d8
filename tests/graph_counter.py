"""A torch.compile backend for tests: runs each captured graph as it is and counts them.

A graph break shows as one more graph, so `graphs == 1` says a function compiled whole, at the cost
of dynamo's capture alone (no inductor).
"""
from __future__ import annotations


class GraphCounter:
    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward
