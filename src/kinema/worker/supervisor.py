"""`kinema serve`'s embedded workers: N `kinema worker` child processes, restarted when
one dies (its job's lease expires and another worker picks the job up), drained with
SIGTERM when the server stops."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from kinema.settings import Settings

log = logging.getLogger("kinema.supervisor")

RESTART_BACKOFF_SECONDS = 1.0


class WorkerPool:
    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-pool", daemon=True)

    def _spawn(self, slot: int) -> None:
        env = {**os.environ, **self.settings.child_environment()}
        env["KINEMA_SUPERVISOR_PID"] = str(os.getpid())
        # Same process group as the server: Ctrl-C reaches the workers (they drain), and
        # killing the group kills them too. If the server dies alone they notice the
        # orphaning (see kinema.worker.loop.serve_forever) and drain.
        self.procs[slot] = subprocess.Popen([sys.executable, "-m", "kinema", "worker"], env=env)
        log.info("worker slot %d: started pid %d", slot, self.procs[slot].pid)  # type: ignore[union-attr]

    def start(self) -> None:
        for slot in range(self.count):
            self._spawn(slot)
        self._thread.start()

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for slot, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                    log.warning(
                        "worker slot %d (pid %d) exited with %s; restarting",
                        slot, proc.pid, proc.returncode,
                    )  # fmt: skip
                    time.sleep(RESTART_BACKOFF_SECONDS)
                    if not self._stopping.is_set():
                        self._spawn(slot)

    def stop(self) -> None:
        """SIGTERM every worker (they finish or hand back their job) and wait for them."""
        self._stopping.set()
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.drain_seconds + 10
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop; killing it", proc.pid)
                proc.kill()
                proc.wait()
