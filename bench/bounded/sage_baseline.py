"""The bounded benchmark on SAGE (PyPI `isage`) with its LocalEnvironment: the same events, the same
map -> map -> filter as bench/bounded/events.ts, a file sink writing the same JSON Lines.

    python sage_baseline.py INPUT OUTPUT [source|batch]

`source` (the default) reads the input through `env.from_source(SourceFunction)`, SAGE's fastest
form and the peer the bench compares with; `batch` through `env.from_batch(BatchFunction)`, which
the bench measured alone until issue 15 (bench/RESULTS.md has the correction).

Prints one JSON line: records read, records written, seconds from building the environment until
the job finished and the sink file was closed (interpreter start-up and imports not counted).
"""

import json
import sys
import time

from sage.foundation import BatchFunction, FilterFunction, MapFunction, SinkFunction, SourceFunction
from sage.runtime import LocalEnvironment, StopSignal

INPUT, OUTPUT = sys.argv[1], sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else "source"
if MODE not in ("source", "batch"):
    sys.exit(f"mode must be source or batch, not {MODE!r}")
COUNTS = {"in": 0, "out": 0}
SINK_FILE = open(OUTPUT, "w", encoding="utf-8")


class EventReader:
    """Reads the JSON Lines input one event at a time; a StopSignal at the end ends the job."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._file = open(INPUT, encoding="utf-8")

    def execute(self):
        line = self._file.readline()
        if not line:
            self._file.close()
            return StopSignal("end of input")
        COUNTS["in"] += 1
        return json.loads(line)


class EventSource(EventReader, SourceFunction):
    """The input as a source (`env.from_source`)."""


class EventBatch(EventReader, BatchFunction):
    """The input as a batch (`env.from_batch`)."""


class Enrich(MapFunction):
    def execute(self, e):
        return {**e, "words": len(e["text"].split(" "))}


class Label(MapFunction):
    def execute(self, e):
        size = "big" if e["cents"] >= 5000 else "small"
        return {
            "id": e["id"],
            "user": e["user"],
            "kind": e["kind"],
            "cents": e["cents"],
            "words": e["words"],
            "tag": f"{e['kind']}:{size}",
        }


class Keep(FilterFunction):
    def execute(self, e):
        return e["kind"] != "view"


class Out(SinkFunction):
    def execute(self, e):
        COUNTS["out"] += 1
        SINK_FILE.write(json.dumps(e, separators=(",", ":")) + "\n")


started = time.perf_counter()
env = LocalEnvironment("bench-bounded")
env.set_console_log_level("WARNING")
events = env.from_source(EventSource) if MODE == "source" else env.from_batch(EventBatch)
events.map(Enrich).map(Label).filter(Keep).sink(Out)
env.submit(autostop=True)
SINK_FILE.close()
seconds = time.perf_counter() - started
print(json.dumps({"in": COUNTS["in"], "out": COUNTS["out"], "seconds": seconds}))
