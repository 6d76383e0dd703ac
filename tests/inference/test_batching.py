"""The server's request batching (swin_dense.inference.server.BatchingWorker) with a stand-in model:
concurrent requests share forward passes of at most max_batch items, every request gets its own
answers, a failing item fails only its request, and a full queue answers 503."""
import asyncio
import threading
import time

import pytest

from swin_dense.inference.server import ApiError, BatchingWorker


class FakeModel:
    """Doubles numbers; 'bad' raises. Records the batches it ran and checks it runs in one thread."""

    def __init__(self, delay=0.02):
        self.batches, self.threads, self.delay = [], set(), delay

    def __call__(self, items):
        self.threads.add(threading.get_ident())
        self.batches.append(list(items))
        time.sleep(self.delay)
        if 'bad' in items:
            raise ValueError('bad item')
        return [x * 2 for x in items]


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_batched_and_answered_correctly():
    model = FakeModel()

    async def main():
        worker = BatchingWorker(model, max_batch=4, wait_s=0.005)
        await worker.start()
        try:
            requests = [[10 * r + i for i in range(1 + r % 3)] for r in range(12)]
            answers = await asyncio.gather(*(worker.submit(req) for req in requests))
        finally:
            await worker.stop()
        return requests, answers

    requests, answers = _run(main())
    for req, ans in zip(requests, answers):
        assert ans == [x * 2 for x in req]
    sizes = [len(b) for b in model.batches]
    assert max(sizes) <= 4 and max(sizes) > 1  # batched across requests, never above max_batch
    assert sum(sizes) == sum(len(r) for r in requests)
    assert len(model.threads) == 1  # one model thread


def test_a_failing_item_fails_only_its_request():
    model = FakeModel()

    async def main():
        worker = BatchingWorker(model, max_batch=8, wait_s=0.01)
        await worker.start()
        try:
            return await asyncio.gather(worker.submit([1, 2]), worker.submit([3, 'bad']), worker.submit([4]),
                                        return_exceptions=True)
        finally:
            await worker.stop()

    good1, bad, good2 = _run(main())
    assert good1 == [2, 4] and good2 == [8]
    assert isinstance(bad, ValueError)
    assert any(len(b) > 1 for b in model.batches)  # the shared batch failed, then items ran one by one


def test_full_queue_answers_503_and_worker_keeps_going():
    model = FakeModel(delay=0.05)

    async def main():
        worker = BatchingWorker(model, max_batch=1, max_queue=3, wait_s=0)
        await worker.start()
        try:
            first = asyncio.create_task(worker.submit([1, 2, 3]))
            await asyncio.sleep(0)  # queued; the worker takes at most one (max_batch=1, 50 ms per run)
            with pytest.raises(ApiError) as info:
                await worker.submit([4, 5])  # >= 2 waiting + 2 > 3
            assert info.value.status == 503 and info.value.error == 'busy'
            assert await first == [2, 4, 6]
            return await worker.submit([5])
        finally:
            await worker.stop()

    assert _run(main()) == [10]
