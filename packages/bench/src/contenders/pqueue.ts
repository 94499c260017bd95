/**
 * p-queue 10.0.0: `autoStart: false`, `add` n no-op tasks, then `start()` and `onIdle()`. Steady rate: a started
 * queue, one `add` per job.
 */
import PQueue from "p-queue"
import type { InProcessContender } from "../types.ts"

export const contender: InProcessContender = {
  load: async (n, { concurrency, onJob }) => {
    const queue = new PQueue({ concurrency, autoStart: false })
    for (let i = 0; i < n; i++) {
      const job = { i, t: 0 }
      void queue.add(() => onJob(job))
    }
    return {
      run: () => {
        queue.start()
        return queue.onIdle()
      },
      close: async () => {
        queue.clear()
      }
    }
  },
  start: async ({ concurrency, onJob }) => {
    const queue = new PQueue({ concurrency })
    return {
      add: (job) => queue.add(() => onJob(job)),
      close: () => queue.onIdle()
    }
  }
}
