#!/usr/bin/env python3
"""kubesealpy on the input of benches/sealed.rs: one Secret with 1,000 values
of 32 random bytes sealed for testdata/sealed/tls.crt (RSA-4096) with
Sealer.seal(), then opened with Unsealer.unseal(). Prints the median of
several runs of each. Needs PyPI kubesealpy (scripts/install-test-tools).

    python3 benches/kubesealpy_seal.py
"""

import os
import statistics
import time
from pathlib import Path

from kubesealpy import SealingScope, Sealer, Unsealer

HERE = Path(__file__).resolve().parent.parent / "testdata" / "sealed"
data = {f"k{i:04}": os.urandom(32) for i in range(1000)}
sealer = Sealer.from_certificate_file(str(HERE / "tls.crt"))
unsealer = Unsealer.from_private_key_file(str(HERE / "tls.key"))

seal_times, unseal_times = [], []
cpu = time.process_time()
for _ in range(10):
    t = time.perf_counter()
    ss = sealer.seal(name="bench", namespace="prod", data=data, scope=SealingScope.STRICT)
    seal_times.append(time.perf_counter() - t)
seal_cpu = (time.process_time() - cpu) / 10
cpu = time.process_time()
for _ in range(3):
    t = time.perf_counter()
    unsealer.unseal(ss)
    unseal_times.append(time.perf_counter() - t)
unseal_cpu = (time.process_time() - cpu) / 3
print(f"kubesealpy Sealer.seal, 1,000 values: median {statistics.median(seal_times) * 1000:.1f} ms "
      f"(min {min(seal_times) * 1000:.1f}, max {max(seal_times) * 1000:.1f}, 10 runs; CPU {seal_cpu * 1000:.1f} ms a run)")
print(f"kubesealpy Unsealer.unseal, 1,000 values: median {statistics.median(unseal_times) * 1000:.0f} ms "
      f"(min {min(unseal_times) * 1000:.0f}, max {max(unseal_times) * 1000:.0f}, 3 runs; CPU {unseal_cpu * 1000:.0f} ms a run)")
