"""RQ with SimpleWorker (no fork per job); see rq_bench.py."""

import _harness
from rq_bench import RQSimpleAdapter

if __name__ == "__main__":
    _harness.main(RQSimpleAdapter)
