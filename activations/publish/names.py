"""What a pushed dataset is known by, apart from its code (which imports pyarrow and torch):
the command line names these before anything is pushed."""

HUB_TAG = "glu-neuron-activations"
"""The tag every card of this layout carries: `neurons datasets --hub` lists by it."""
DEFAULT_LICENSE = "mit"  # the published OLMo-7B-0424 dataset's
