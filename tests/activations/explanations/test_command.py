"""The random sample of neurons that `neurons explain --sample` and bench.explain_distribution
draw: a larger sample of the same seed holds the smaller one, at every population size."""

from __future__ import annotations

import random

from activations.explanations.command import nested_sample


def test_a_larger_sample_begins_with_the_smaller_one():
    for size in (1, 7, 48, 300):
        population = list(range(size))
        for seed in range(20):
            whole = nested_sample(population, size, seed)
            assert sorted(whole) == population
            for k in range(size + 2):
                assert nested_sample(population, k, seed) == whole[:k]


def test_large_populations_keep_the_neurons_random_sample_drew():
    # random.sample's own draw where the population is large next to k (the same seed's
    # neurons as before, for a 200-neuron sample of a 30 x 1536 model)
    population = [(layer, neuron) for layer in range(30) for neuron in range(1536)]
    for seed, k in ((0, 200), (1, 5), (7, 1000)):
        assert nested_sample(population, k, seed) == random.Random(seed).sample(population, k)
