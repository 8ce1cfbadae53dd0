"""The console's progress bar (harness.console) over evaluation work: the policy answering requests its generation
cache does not hold (harness.eval.generation_cache) and judges answering items their verdict cache does not hold
(harness.eval.judges).

A model's own batching is left alone. lm-eval's models call `cache_hook.add_partial(kind, request, answer)` once per
answered request, from inside their batch loop (the hook lm-eval's CachingLM stores answers with); `follow` hooks it
to move the bar as answers come. Sending the requests in chunks instead would change the batches: HFLM sorts the
requests of one call by length and pads each batch to its longest member, so a chunk boundary changes which requests
share a batch and how much padding each gets, and with it the logits' last bits (enough to flip a greedy token or a
log-likelihood's rounding). A model that never calls the hook (a wrapper, vLLM before its whole call ends) fills the
bar when its call returns.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from harness import console


@contextlib.contextmanager
def bar(label: str, total: int) -> Iterator[None]:
    """A bar of `total` units for the duration of the block, full when the block finishes."""
    console.progress(label, total)
    yield
    console.advance(total)


@contextlib.contextmanager
def follow(lm, kind: str, per: int = 1) -> Iterator[None]:
    """Advance the bar by one for every `per` requests of `kind` the lm-eval model `lm` answers in the block."""
    previous = getattr(lm, "cache_hook", None)
    if previous is None or not hasattr(lm, "set_cache_hook"):
        yield
        return
    from lm_eval.api.model import CacheHook

    class Advance(CacheHook):
        def __init__(self):
            super().__init__(None)
            self.answered = 0

        def add_partial(self, attr, req, res) -> None:
            previous.add_partial(attr, req, res)  # whatever hook was set keeps its answers
            if attr == kind and req is not None:  # None: a rolling window, not a request of its own
                self.answered += 1
                if self.answered % per == 0:
                    console.advance()

    lm.set_cache_hook(Advance())
    try:
        yield
    finally:
        lm.set_cache_hook(previous)
