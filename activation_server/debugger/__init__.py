"""transformer-debugger's inference protocol (its requests_and_responses.py), answered by
activations.debugger."""
