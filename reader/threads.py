"""OpenMP settings, applied before torch or FAISS load their OpenMP runtimes (each ships its own libgomp).

With the default wait policy, the threads of one runtime spin after each parallel region while the other
runtime's threads need the same cores: a single hybrid retrieval (the embedder, then FAISS) took 170-520 ms
instead of 17-20 ms on 2 cores. Passive waiting costs batched work nothing measurable. A value the user
set in the environment is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
