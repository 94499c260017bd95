/**
 * Effect 4.1 `PersistedQueue` with its Redis store (`layerStoreRedis`, defaults: 1 s poll interval), over an ioredis
 * adapter for `effect/persistence/Redis` (`Redis.make`). `offer` one element per call (it has no bulk offer, so it sits out the bulk
 * scenario); a worker is `concurrency` fibers looping on `take` with a no-op handler.
 */
import { Effect, Fiber, Layer, ManagedRuntime, Schema } from "effect"
import * as PersistedQueue from "effect/persistence/PersistedQueue"
import * as Redis from "effect/persistence/Redis"
import { Redis as IORedis } from "ioredis"
import type { Job, RedisContender, RedisTarget } from "../types.ts"

const JobSchema = Schema.Struct({ i: Schema.Number, t: Schema.Number })
const PREFIX = "effectq:"

const open = async (target: RedisTarget): Promise<IORedis> => {
  const client = new IORedis({ host: target.host, port: target.port, lazyConnect: true })
  client.on("error", () => {})
  await client.connect()
  return client
}

const sender = (client: IORedis) => <A = unknown>(command: string, ...args: ReadonlyArray<string>) =>
  Effect.tryPromise({
    try: () => client.call(command, ...args) as Promise<A>,
    catch: (cause) => new Redis.RedisError({ cause })
  })

/** `Redis.Redis` on ioredis: one shared connection, and fresh ones for subscriptions and `reserve`. */
const redisLayer = (target: RedisTarget, client: IORedis): Layer.Layer<Redis.Redis, Redis.RedisError> =>
  Layer.effect(
    Redis.Redis,
    Redis.make({
      send: sender(client),
      subscribe: (channel, onMessage) =>
        Effect.gen(function*() {
          const subscriber = yield* Effect.acquireRelease(
            Effect.tryPromise({ try: () => open(target), catch: (cause) => new Redis.RedisError({ cause }) }),
            (c) => Effect.sync(() => c.disconnect())
          )
          subscriber.on("message", (ch: string, message: string) => onMessage({ channel: ch, message }))
          yield* Effect.tryPromise({
            try: () => subscriber.subscribe(channel),
            catch: (cause) => new Redis.RedisError({ cause })
          })
          return Effect.never
        }),
      connect: Effect.tryPromise({ try: () => open(target), catch: (cause) => new Redis.RedisError({ cause }) }).pipe(
        Effect.map((c) => ({ send: sender(c), close: Effect.sync(() => c.disconnect()) }))
      )
    })
  )

const runtimeFor = async (target: RedisTarget) => {
  const client = await open(target)
  const layer = PersistedQueue.layer.pipe(
    Layer.provide(PersistedQueue.layerStoreRedis({ prefix: PREFIX })),
    Layer.provide(redisLayer(target, client))
  )
  const runtime = ManagedRuntime.make(layer)
  const queue = await runtime.runPromise(PersistedQueue.make({ name: target.queue, schema: JobSchema }))
  const dispose = async () => {
    await runtime.dispose()
    client.disconnect()
  }
  return { client, runtime, queue, dispose }
}

export const contender: RedisContender = {
  producer: async (target) => {
    const { client, runtime, queue, dispose } = await runtimeFor(target)
    const offer = (job: Job) => runtime.runPromise(queue.offer(job))
    const key = `${PREFIX}${target.queue}`
    return {
      add: async (job) => {
        await offer(job)
      },
      addBulk: undefined,
      leftover: async () => {
        const [queued, pending, delayed, failed] = await Promise.all([
          client.llen(key),
          client.hlen(`${key}:pending`),
          client.zcard(`${key}:delayed`),
          client.llen(`${key}:failed`)
        ])
        return { pending: queued + pending + delayed, failed }
      },
      close: dispose
    }
  },
  worker: async (target, { concurrency, onJob }) => {
    const { runtime, queue, dispose } = await runtimeFor(target)
    const handle = (job: Job) => Effect.sync(() => onJob(job))
    const fibers = Array.from({ length: concurrency }, () => runtime.runFork(Effect.forever(queue.take(handle))))
    return {
      close: async () => {
        await runtime.runPromise(Fiber.interruptAll(fibers))
        await dispose()
      }
    }
  }
}
