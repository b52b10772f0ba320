"""Record formats (GLU Parquet, neuron-explainer JSON), their schema and the answers they make."""
