"""HTTP: the FastAPI app that serves neuron records and live activations."""
