/**
 * fastq 1.20.3 with its promise API (`fastq.promise`, an async no-op worker): paused, `push` n tasks, then `resume()`
 * and `drained()`. (A synchronous callback worker recurses through the whole backlog and overflows the stack.)
 * Steady rate: a running queue, one `push` per job.
 */
import fastq from "fastq"
import type { InProcessContender, Job } from "../types.ts"

export const contender: InProcessContender = {
  load: async (n, { concurrency, onJob }) => {
    const queue = fastq.promise<unknown, Job, void>(async (job) => {
      onJob(job)
    }, concurrency)
    queue.pause()
    for (let i = 0; i < n; i++) void queue.push({ i, t: 0 })
    return {
      run: () => {
        const drained = queue.drained()
        queue.resume()
        return drained
      },
      close: async () => {
        queue.kill()
      }
    }
  },
  start: async ({ concurrency, onJob }) => {
    const queue = fastq.promise<unknown, Job, void>(async (job) => {
      onJob(job)
    }, concurrency)
    return {
      add: (job) => queue.push(job),
      close: () => queue.drained()
    }
  }
}
