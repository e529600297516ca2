"""The node-loss suite needs the local three-node cluster (`make test-cluster` starts it and sets
ASSISTD_TEST_CLUSTER); without it these modules are not collected at all, so nothing is skipped."""

import os

collect_ignore_glob = [] if os.environ.get("ASSISTD_TEST_CLUSTER") else ["test_*.py"]
