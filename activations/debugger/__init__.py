"""The Transformer Debugger's computation on a Hugging Face model: one forward and one backward
pass per prompt variant, with hooks on the model's own modules, giving each layer's GLU neurons
and attention heads their activations, act × grad attributions to a logit difference, direct
effects on it and write norms; node ablations per pass; tracing upstream from a node."""
