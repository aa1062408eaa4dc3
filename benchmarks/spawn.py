"""Run a command and write its own peak RSS (KiB) to a file.

A child's ru_maxrss counts the image it was forked from, so a command started straight
from a benchmark process that holds hundreds of MB would report them too. This launcher
is started with ``python -S`` (a few MB) and forks the command from itself.
Usage: python -S spawn.py RSS_FILE COMMAND [ARG...]
"""

import os
import sys

pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
