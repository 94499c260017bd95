/**
 * Bee-Queue 2.0.0 with library defaults: `createJob().save()`, `saveAll`, `process(concurrency, fn)`.
 */
import BeeQueue from "bee-queue"
import type { Job, RedisContender, RedisTarget } from "../types.ts"

const open = async (target: RedisTarget, isWorker: boolean): Promise<BeeQueue<Job>> => {
  const queue = new BeeQueue<Job>(target.queue, { redis: { host: target.host, port: target.port }, isWorker })
  await queue.ready()
  return queue
}

export const contender: RedisContender = {
  producer: async (target) => {
    const queue = await open(target, false)
    return {
      add: async (job) => {
        await queue.createJob(job).save()
      },
      addBulk: async (jobs) => {
        const errors = await queue.saveAll(jobs.map((job) => queue.createJob(job)))
        if (errors.size > 0) throw new Error(`bee-queue saveAll: ${errors.size} jobs failed`)
      },
      leftover: async () => {
        const h = await queue.checkHealth()
        return { pending: h.waiting + h.active + h.delayed, failed: h.failed }
      },
      close: () => queue.close()
    }
  },
  worker: async (target, { concurrency, onJob }) => {
    const queue = await open(target, true)
    queue.process(concurrency, async (job) => {
      onJob(job.data)
    })
    return { close: () => queue.close() }
  }
}
