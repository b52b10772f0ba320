"""Models, derived scalars and neuron records.

Importing this package is cheap: modules that need torch import it themselves.
"""
