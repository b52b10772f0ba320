"""Record sources: one per dataset format (GLU quadrant Parquet, neuron-explainer JSON) behind
one protocol, and the catalog that opens a registered dataset's source."""
