/**
 * The Redis results store (`Results` of `@errand/core`), provided by `RedisBroker.layer` on the broker's own
 * connection.
 *
 * **Keys.** One string per result, `<prefix>:result:<message id>`, written by one script that also publishes on the
 * channel of the same name (`SET … PX ttl` + `PUBLISH`, atomic). The value is JSON `{"r": <stored outcome>, "x":
 * <expiry, epoch ms by Effect's Clock>}`: the expiry is checked when read, so `TestClock` expires results as it does
 * every other timer of Errand, and `PX` is Redis's own backstop. Each result is a key of its own, so on a Cluster the
 * results spread over the slots.
 *
 * **Waiting.** A reader that finds nothing subscribes to the result's channel on one subscriber connection per broker
 * (opened at the first wait, shared by every wait), reads again (so a write between the two reads is not missed),
 * and waits for the notification or its timeout: no polling. A subscriber that reconnects wakes every waiter to read
 * again, since a notification sent while it was away is gone.
 *
 * @since 0.2.0
 */
import { ErrandError, Results } from "@errand/core"
import { Clock, Duration, Effect, Exit, Schema, type Scope } from "effect"
import type { Cluster, Redis } from "ioredis"
import { call } from "./internal/calls.ts"
import * as Connection from "./internal/connection.ts"

const PUT = `redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
redis.call("PUBLISH", KEYS[1], "1")
return 1`

interface PutClient {
  readonly errand_result_put: (key: string, value: string, ttl: number) => Promise<unknown>
}

const decodeStored = Schema.decodeUnknownExit(Results.Stored)

/**
 * Builds the results store on a connected client, in a scope that closes its subscriber connection (if a wait opened
 * one).
 *
 * @category constructors
 * @since 0.2.0
 */
export const make = (options: {
  readonly client: Redis | Cluster
  readonly prefix: string
  /** The URL with its password masked, for errors. */
  readonly redacted: string
  readonly connectTimeout: number
}): Effect.Effect<Results.Results["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const { client, prefix } = options
    client.defineCommand("errand_result_put", { lua: PUT, numberOfKeys: 1 })
    const writer = client as (Redis | Cluster) & PutClient
    const keyOf = (messageId: string) => `${prefix}:result:${messageId}`

    /** Listeners of each channel: each re-reads its result when called. */
    const listeners = new Map<string, Set<() => void>>()
    let subscriber: Promise<Redis | Cluster> | undefined
    let closed = false

    const openSubscriber = (): Promise<Redis | Cluster> => {
      if (subscriber !== undefined) return subscriber
      const created: Redis | Cluster = "isCluster" in client && client.isCluster
        ? (client as Cluster).duplicate()
        : (client as Redis).duplicate()
      created.on("message", (channel: string) => {
        const set = listeners.get(channel)
        if (set !== undefined) { for (const listener of [...set]) listener() }
      })
      let connectedOnce = false
      created.on("ready", () => {
        // a notification sent while the subscriber was away is gone: every waiter reads again
        if (connectedOnce) { for (const set of listeners.values()) for (const listener of [...set]) listener() }
        connectedOnce = true
      })
      subscriber = Effect.runPromise(
        Connection.connect(created, options.redacted, options.connectTimeout).pipe(Effect.as(created))
      ).catch((error: unknown) => {
        subscriber = undefined
        void Effect.runPromise(Connection.close(created))
        throw error
      })
      return subscriber
    }

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        const pending = subscriber
        subscriber = undefined
        return pending === undefined
          ? Effect.void
          : Effect.promise(() =>
            pending.then((connection) => Effect.runPromise(Connection.close(connection)), () => {})
          )
      })
    )

    /** Subscribes a listener to a result's channel for the scope (the channel's first listener subscribes it). */
    const listen = (channel: string, listener: () => void) =>
      Effect.acquireRelease(
        Effect.flatMap(call("subscribe", openSubscriber), (connection) => {
          let set = listeners.get(channel)
          if (set !== undefined) {
            set.add(listener)
            return Effect.void
          }
          listeners.set(channel, set = new Set([listener]))
          return call("subscribe", () => connection.subscribe(channel)).pipe(
            Effect.tapError(() => Effect.sync(() => listeners.delete(channel)))
          )
        }),
        () =>
          Effect.suspend(() => {
            const set = listeners.get(channel)
            set?.delete(listener)
            if (set === undefined || set.size > 0) return Effect.void
            listeners.delete(channel)
            const pending = subscriber
            return closed || pending === undefined ?
              Effect.void :
              Effect.promise(() => pending.then((connection) => connection.unsubscribe(channel)).catch(() => undefined))
                .pipe(Effect.asVoid)
          })
      )

    const get = (messageId: string): Effect.Effect<Results.Stored | undefined, ErrandError.BrokerError> =>
      Effect.flatMap(call("result get", () => client.get(keyOf(messageId))), (raw) => {
        if (raw === null) return Effect.succeed(undefined)
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          let parsed: { readonly r?: unknown; readonly x?: unknown }
          try {
            parsed = JSON.parse(raw) as typeof parsed
          } catch {
            parsed = {}
          }
          if (typeof parsed.x === "number" && parsed.x <= now) return Effect.succeed(undefined)
          const stored = decodeStored(parsed.r)
          return Exit.isSuccess(stored) ? Effect.succeed(stored.value) : Effect.fail(
            new ErrandError.BrokerError({
              broker: "redis",
              operation: "result get",
              message: `The result of message ${messageId} is not a stored outcome: ${raw.slice(0, 200)}`
            })
          )
        })
      })

    return Results.Results.of({
      put: (messageId, result, ttl) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const ttlMillis = Math.max(1, Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(ttl))))
          const value = JSON.stringify({ r: result, x: now + ttlMillis })
          return Effect.asVoid(call("result put", () => writer.errand_result_put(keyOf(messageId), value, ttlMillis)))
        }),
      get,
      await: (messageId, timeout) =>
        Effect.flatMap(get(messageId), (found) => {
          if (found !== undefined) return Effect.succeed<Results.Stored | undefined>(found)
          return Effect.scoped(Effect.gen(function*() {
            let wake: (() => void) | undefined
            let notified = false
            yield* listen(keyOf(messageId), () => {
              notified = true
              wake?.()
            })
            // read again: a write between the first read and the subscription published to no one
            const waitForResult: Effect.Effect<Results.Stored, ErrandError.BrokerError> = Effect.flatMap(
              get(messageId),
              (stored) => {
                if (stored !== undefined) return Effect.succeed(stored)
                return Effect.andThen(
                  Effect.callback<void>((resume) => {
                    if (notified) {
                      notified = false
                      return resume(Effect.void)
                    }
                    wake = () => {
                      wake = undefined
                      notified = false
                      resume(Effect.void)
                    }
                    return Effect.sync(() => {
                      wake = undefined
                    })
                  }),
                  Effect.suspend(() => waitForResult)
                )
              }
            )
            const result = yield* Effect.timeoutOption(waitForResult, timeout)
            return result._tag === "Some" ? result.value : undefined
          }))
        })
    })
  })
