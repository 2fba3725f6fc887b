"""Drives python3-pyclamd through every call it offers: ping, version, stats,
scan_stream, scan_file, contscan_file, multiscan_file, allmatchscan, reload
and shutdown. Reads the plan (argv[1], JSON), prints operation -> result."""
import json
import sys

import pyclamd

plan = json.load(open(sys.argv[1]))
timeout = plan["op_timeout_ms"] / 1000
if plan["unix"]:
    c = pyclamd.ClamdUnixSocket(plan["unix"], timeout=timeout)
else:
    c = pyclamd.ClamdNetworkSocket(plan["host"], plan["port"], timeout=timeout)


def stream(name):
    """scan_stream of an open file. Given bytes instead, pyclamd writes a
    second end-of-stream marker after the first, which races with the
    server's close (EPIPE now and then, with clamd as with clamgate)."""
    with open(plan["files"][name], "rb") as f:
        return c.scan_stream(f)


def scan_verdict(r):
    """pyclamd's contract: None means no virus found; a dict maps each
    name to ('FOUND', virus) or ('ERROR', reason)."""
    if r is None:
        return "clean"
    if any(status == "FOUND" for status, _ in r.values()):
        return "infected"
    return "error"


def scan(call):
    r = call()
    return r, scan_verdict(r)


ops = [
    ("ping", "ping()", lambda: (c.ping(), None)),
    ("version", "version()", lambda: (c.version(), None)),
    ("stats", "stats()", lambda: (c.stats(), None)),
    ("stream-clean", "scan_stream()", lambda: scan(lambda: stream("clean"))),
    ("stream-eicar", "scan_stream()", lambda: scan(lambda: stream("eicar"))),
    ("stream-empty", "scan_stream()", lambda: scan(lambda: stream("empty"))),
    ("stream-5mib", "scan_stream()", lambda: scan(lambda: stream("big"))),
    ("stream-over-limit", "scan_stream()", lambda: scan(lambda: stream("over"))),
    ("file-clean", "scan_file()", lambda: scan(lambda: c.scan_file(plan["files"]["clean"]))),
    ("file-eicar", "scan_file()", lambda: scan(lambda: c.scan_file(plan["files"]["eicar"]))),
    ("dir-infected", "contscan_file()", lambda: scan(lambda: c.contscan_file(plan["files"]["dir"]))),
    ("dir-clean", "contscan_file()", lambda: scan(lambda: c.contscan_file(plan["files"]["cleandir"]))),
    ("multiscan", "multiscan_file()", lambda: scan(lambda: c.multiscan_file(plan["files"]["dir"]))),
    ("allmatch", "allmatchscan()", lambda: scan(lambda: c.allmatchscan(plan["files"]["dir"]))),
    ("reload", "reload()", lambda: (c.reload(), None)),
    ("shutdown", "shutdown()", lambda: (c.shutdown(), None)),
]

out = {}
for op, call, fn in ops:
    try:
        value, verdict = fn()
        out[op] = {"call": call, "value": value, "verdict": verdict or ""}
    except Exception as e:  # the client's own exceptions are results too
        out[op] = {"call": call, "error": type(e).__name__ + ": " + str(e), "verdict": "error"}
print(json.dumps(out, sort_keys=True))
