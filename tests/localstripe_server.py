"""Run localstripe (a Stripe-compatible test server; GPL, installed as a test tool, not
copied) on 127.0.0.1 only, keeping nothing on disk: `python tests/localstripe_server.py PORT`.

Its own CLI binds every interface and pickles its store to /tmp after each write.
"""

import sys

from aiohttp import web
from localstripe import server
from localstripe.resources import store

store.dump_to_disk = lambda: None
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
