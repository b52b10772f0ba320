"""Finding neurons: which fire on a prompt (one forward pass over every layer, prompt.py), and
which peak on a token in a dataset's top examples (an index beside its records,
token_index.py); searches.py serves both to the server and the Python API."""
