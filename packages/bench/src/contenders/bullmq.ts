/**
 * BullMQ 6.7.0 with library defaults: `Queue.add` / `addBulk`, `Worker` with `concurrency`.
 */
import { Queue, Worker } from "bullmq"
import type { Job, RedisContender, RedisTarget } from "../types.ts"

const connection = (target: RedisTarget) => ({ host: target.host, port: target.port, maxRetriesPerRequest: null })

export const contender: RedisContender = {
  producer: async (target) => {
    const queue = new Queue<Job>(target.queue, { connection: connection(target) })
    await queue.waitUntilReady()
    return {
      add: async (job) => {
        await queue.add("noop", job)
      },
      addBulk: async (jobs) => {
        await queue.addBulk(jobs.map((data) => ({ name: "noop", data })))
      },
      leftover: async () => {
        const c = await queue.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children", "failed")
        const pending = (c["waiting"] ?? 0) + (c["active"] ?? 0) + (c["delayed"] ?? 0) + (c["prioritized"] ?? 0)
          + (c["waiting-children"] ?? 0)
        return { pending, failed: c["failed"] ?? 0 }
      },
      close: () => queue.close()
    }
  },
  worker: async (target, { concurrency, onJob }) => {
    const worker = new Worker<Job>(target.queue, async (job) => {
      onJob(job.data)
    }, { connection: connection(target), concurrency })
    await worker.waitUntilReady()
    return { close: () => worker.close() }
  }
}
