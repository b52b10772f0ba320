"""What a neuron reads and writes, and what kind it is, from the model's weights alone:
cosines and IO classes (classes.py), token lists through the embeddings (compute.py), kept per
model on disk (store.py) and served (views.py)."""
