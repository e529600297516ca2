"""assistd's gRPC service."""

import os

# litellm fetches a remote price map when it is imported unless told to use its bundled copy; set this
# before any module of ours can import litellm (llm.py, the chunker's tokenizer), so nothing goes online.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
