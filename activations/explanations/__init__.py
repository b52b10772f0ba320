"""Explanations of neurons and their scores, by neuron-explainer's method: an explainer model
reads a neuron's top examples (token<tab>activation, 0-10) and writes candidate explanations; a
simulator model predicts the activations from each explanation ("all at once": one prompt whose
`unknown` slots give every token's distribution over 0-10); the correlation of the expected
values with the real ones is the explanation's score, and the best candidate is kept."""
