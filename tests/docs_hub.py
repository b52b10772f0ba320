"""`python -m tests.docs_hub FOLDER PORT`: the local Hub (tests/hub.py) serving FOLDER as the
published OLMo dataset's repo on 127.0.0.1:PORT until stopped, for the pages that read it."""

from __future__ import annotations

import sys
import threading

from tests.hub import FakeHub

PUBLISHED = "sjgerstner/OLMo-7B-0424-hf_neuron-activations"


def main(folder: str, port: int) -> None:
    hub = FakeHub(port=port)
    hub.add_repo("dataset", PUBLISHED, folder)
    hub.start()
    print(f"hub at {hub.endpoint}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
