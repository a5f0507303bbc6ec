"""Remove a node agent's containers when the agent ends (standalone script).

Run as `python -I -S reaper.py PODMAN_ARGV_JSON FILTER` (FILTER: a `podman ps` filter) with a
pipe on stdin that only the agent holds. The script waits for the pipe's end, which comes when
the agent closes it or when the agent dies in any way (even SIGKILL), then force-removes every
container the filter selects. It lives in its own session, so signals meant for the agent's
process group spare it.
"""

import json
import subprocess
import sys


def main() -> int:
    podman, selector = json.loads(sys.argv[1]), sys.argv[2]
    sys.stdin.buffer.read()  # returns at the end of the pipe
    listing = subprocess.run(
        [*podman, "ps", "--all", f"--filter={selector}", "--format={{.ID}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    ids = listing.stdout.split()
    if ids:
        subprocess.run(
            [*podman, "rm", "--force", "--time=0", *ids], capture_output=True, check=False
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
