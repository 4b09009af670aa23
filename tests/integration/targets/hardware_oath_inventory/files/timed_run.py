# Copyright (c) tokenops.entra contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a command and say when each line of its output arrived: ``timed_run.py COMMAND [ARGS...]`` prints one JSON
document, ``{"rc": N, "lines": [{"at": SECONDS, "text": LINE}, ...]}``, SECONDS counted from the start. Standard output
and standard error are read together, as a terminal or a CI log shows them: what is under test is when a line shows,
not what the command says about itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time


def main() -> int:
    start = time.monotonic()
    lines = []
    with subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append({"at": round(time.monotonic() - start, 2), "text": line.rstrip("\n")})
    print(json.dumps({"rc": process.returncode, "lines": lines}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
