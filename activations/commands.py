"""Running a command-line command: user registrations first, and every expected error one line
on stderr with exit status 2 (a traceback only with --debug)."""

from __future__ import annotations

import argparse
import sys

from registry.plugins import PluginError, load_register_modules

# OSError: what the system refuses of a path given (too long, not permitted, a full disk): said
# as the system says it
EXPECTED_ERRORS = (PluginError, LookupError, ValueError, OSError)
RESUME_HINT = " (a collation resumes from its checkpoint with --resume)"


def run_command(args: argparse.Namespace) -> int:
    try:
        load_register_modules(getattr(args, "register", []))
        return args.func(args)
    except EXPECTED_ERRORS as error:
        if getattr(args, "debug", False):
            raise
        print(f"neurons: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # only a collation has a checkpoint to resume from (it alone takes --resume)
        resumable = hasattr(args, "resume")
        print("neurons: interrupted" + (RESUME_HINT if resumable else ""))
        return 130
