"""OpenMP settings, applied before torch or FAISS load their OpenMP runtimes (each ships its own libgomp).

With the default wait policy, the threads of one runtime spin after each parallel region while the other
runtime's threads need the same cores. Measured on 2 cores over the txtai docs store, one question at a time:
`RAG.ask` p50 109-121 ms and max 245-279 ms when spinning, 71-86 ms and 84-100 ms when waiting passively;
batched embedding of SQuAD paragraphs loses about 5% (122 against 115 paragraphs/s). A value the user set in
the environment is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
