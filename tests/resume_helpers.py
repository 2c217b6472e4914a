"""A runtime that dies right after its first checkpoint: the resume tests' simulated crash."""

from genlab.core.runtime import LocalRuntime


class Crash(Exception):
    pass


class CrashAfterFirstCheckpoint(LocalRuntime):
    def report(self, metrics, checkpoint=None):
        super().report(metrics, checkpoint)
        if checkpoint is not None:
            raise Crash("simulated failure after the first checkpoint")
