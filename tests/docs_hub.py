"""`python -m tests.docs_hub PORT STORAGE [--published FOLDER] [--write-token TOKEN ...]`: the
local Hub for the pages, on 127.0.0.1:PORT until stopped. It is the upload stand-in
(tests/hub_upload.py: uploads through LFS only, so HF_HUB_DISABLE_XET=1), keeping the repos
pushed to it under STORAGE; FOLDER, where given, is served as the published OLMo dataset's repo
(the pages that read it), and each TOKEN may write (the token a page exports as HF_TOKEN)."""

from __future__ import annotations

import argparse
import threading

from tests.hub_upload import UploadHub

PUBLISHED = "sjgerstner/OLMo-7B-0424-hf_neuron-activations"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.docs_hub")
    parser.add_argument("port", type=int)
    parser.add_argument("storage", help="a folder for the repos pushed and the LFS store")
    parser.add_argument("--published", metavar="FOLDER", help="the published dataset's files")
    parser.add_argument("--write-token", action="append", default=[], metavar="TOKEN")
    args = parser.parse_args(argv)
    hub = UploadHub(args.storage, port=args.port)
    if args.published:
        hub.add_repo("dataset", PUBLISHED, args.published)
    hub.tokens.update(dict.fromkeys(args.write_token, "write"))
    hub.start()
    print(f"hub at {hub.endpoint}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
