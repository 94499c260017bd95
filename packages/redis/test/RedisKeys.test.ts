/**
 * Redis-only checks that read raw keys: where messages live, what is left after an ack, dead-letter trimming, and how
 * elements are stored (see the key schema in the README).
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Clock, Context, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import type { Redis } from "ioredis"
import * as Inspect from "../src/internal/inspect.ts"
import * as Scripts from "../src/internal/scripts.ts"
import { ack, message, rawClient, redisUrl, uniquePrefix } from "./utils/testing.ts"

const boom = { tag: "Boom", message: "boom" }

/** A broker on a fresh prefix, plus a raw client and the queue's key names. */
const setup = (options: Partial<RedisBroker.RedisBrokerOptions> = {}) =>
  Effect.gen(function*() {
    const prefix = uniquePrefix()
    const queue = "jobs"
    const context = yield* Layer.build(RedisBroker.layer({ url: redisUrl, prefix, ...options }))
    const broker = Context.get(context, Broker.Broker)
    yield* Effect.addFinalizer(() => Effect.ignore(broker.flush(queue)))
    const raw = yield* rawClient()
    const key = (suffix: string) => `{${prefix}:${queue}}:${suffix}`
    return { broker, raw, prefix, queue, key }
  })

/** Every key of the prefix's queues (not the prefix's queue registry, `{<prefix>:}:queues`), with its content. */
const dumpPrefix = (raw: Redis, prefix: string) =>
  Effect.promise(async () => {
    const keys = (await raw.keys(`{${prefix}:*`)).filter((key) => key !== `{${prefix}:}:queues`)
    const dump: Record<string, unknown> = {}
    for (const key of keys.sort()) {
      const type = await raw.type(key)
      dump[key] = type === "list"
        ? await raw.lrange(key, 0, -1)
        : type === "zset"
        ? await raw.zrange(key, "0", "-1")
        : type === "hash"
        ? await raw.hgetall(key)
        : await raw.get(key)
    }
    return dump
  })

/** How an element stores Errand's envelope: `~` + its JSON without the `queue` field, which the keys imply. */
const stored = (message: Broker.Outgoing): string => {
  const { queue: _queue, ...rest } = message.body as Record<string, unknown>
  return "~" + JSON.stringify(rest)
}

describe("RedisBroker keys", () => {
  it.effect("keeps a ready no-op message as one compact list element (the body JSON, its queue implied)", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup()
      const m = message(queue)
      yield* broker.enqueue([m])
      const elements = yield* Effect.promise(() => raw.lrange(key("r"), 0, -1))
      assert.deepStrictEqual(elements, [stored(m)])
      assert.notInclude(elements[0], `"queue"`)
      // A message whose body does not start with its id is stored with a small header
      const other: Broker.Outgoing = { id: "x/1", queue, priority: 0, eta: 0, body: { n: 1 } }
      yield* broker.enqueue([other])
      const second = yield* Effect.promise(() => raw.lindex(key("r"), 1))
      assert.strictEqual(second, `#[0,0,0,"x/1"]\n{"n":1}`)
    }).pipe(Effect.scoped))

  it.effect("gives a body its implied queue back on every read, and stores another queue's body as sent", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup()
      const plain = message(queue)
      const urgent = message(queue, { priority: -1 })
      // a body naming another queue is stored as sent; any plain object naming this queue has it implied
      const own = message(queue)
      const elsewhere: Broker.Outgoing = { ...own, body: { ...own.body as object, queue: "other" } }
      const reordered: Broker.Outgoing = { id: "r-1", queue, priority: 0, eta: 0, body: { queue, id: "r-1", n: 1 } }
      yield* broker.enqueue([plain, urgent, elsewhere, reordered])
      const ready = yield* Effect.promise(() => raw.lrange(key("r"), 0, -1))
      assert.deepStrictEqual(ready, [
        stored(plain),
        JSON.stringify(elsewhere.body),
        `~{"id":"r-1","n":1}`
      ])
      // an element written before the queue was implied (the full JSON) is read as it is
      const legacy = message(queue)
      yield* Effect.promise(() => raw.rpush(key("r"), JSON.stringify(legacy.body)))
      const now = yield* Clock.currentTimeMillis
      const sent = [urgent, plain, elsewhere, reordered, legacy]
      const first = (yield* broker.take({ queue, max: 10, lease: "1 minute" })).deliveries
      assert.deepStrictEqual(first.map((d) => d.body), sent.map((m) => m.body))
      // through a retry (a headed element), a dead letter and a requeue
      yield* broker.settle([
        { _tag: "Retry", delivery: first[0]!, eta: now, error: boom },
        { _tag: "DeadLetter", delivery: first[1]!, reason: boom },
        ...first.slice(2).map(ack)
      ])
      assert.deepStrictEqual((yield* broker.deadLetters(queue)).map((d) => d.body), [plain.body])
      assert.strictEqual(yield* broker.requeueDeadLetters(queue), 1)
      const second = (yield* broker.take({ queue, max: 10, lease: "1 minute" })).deliveries
      assert.sameDeepMembers(second.map((d) => d.body), [urgent.body, plain.body])
      yield* broker.settle(second.map(ack))
    }).pipe(Effect.scoped))

  it.effect("keeps every key of a queue under one hash tag", () =>
    Effect.gen(function*() {
      const { broker, prefix, queue, raw } = yield* setup()
      yield* broker.enqueue([message(queue), message(queue, { priority: 2 }), message(queue, { eta: 5_000 })])
      const taken = yield* broker.take({ queue, max: 1, lease: "1 minute" })
      yield* broker.settle([{ _tag: "DeadLetter", delivery: taken.deliveries[0]!, reason: boom }])
      const keys = Object.keys(yield* dumpPrefix(raw, prefix))
      assert.isAbove(keys.length, 4)
      // Redis Cluster hashes only the part between the first { and }: the same for every key
      for (const k of keys) assert.isTrue(k.startsWith(`{${prefix}:${queue}}:`), k)
    }).pipe(Effect.scoped))

  it.effect("leaves nothing of a message behind once it is acked", () =>
    Effect.gen(function*() {
      const { broker, key, prefix, queue, raw } = yield* setup()
      const messages = [
        message(queue),
        message(queue, { priority: -1 }),
        message(queue, { priority: 3 }),
        message(queue, { eta: 1_000 })
      ]
      yield* broker.enqueue(messages)
      // Some are retried and released on the way
      const first = yield* broker.take({ queue, max: 2, lease: "1 minute" })
      const now = yield* Clock.currentTimeMillis
      yield* broker.settle([
        { _tag: "Retry", delivery: first.deliveries[0]!, eta: now + 500, error: boom },
        { _tag: "Release", delivery: first.deliveries[1]! }
      ])
      yield* TestClock.adjust(1_000)
      let settle: ReadonlyArray<Broker.Settlement> = []
      const seen = new Set<string>()
      for (let i = 0; i < 10; i++) {
        const taken = yield* broker.take({ queue, max: 2, lease: "1 minute", settle })
        for (const d of taken.deliveries) seen.add(d.id)
        settle = taken.deliveries.map(ack)
      }
      assert.strictEqual(seen.size, 4)
      const dump = yield* dumpPrefix(raw, prefix)
      // Only the per-queue sequence counter and wake-up marker may remain; no member mentions a message
      assert.includeMembers([key("s"), key("w")], Object.keys(dump))
      const text = JSON.stringify(dump)
      for (const m of messages) assert.notInclude(text, m.id)
    }).pipe(Effect.scoped))

  it.effect("holds an idempotency key in :k, its window in :kx, and leaves nothing once the window is pruned", () =>
    Effect.gen(function*() {
      const { broker, key, prefix, queue, raw } = yield* setup()
      const keyed = { ...message(queue), key: "order-42", keyTtl: 1_000 }
      yield* broker.enqueue([keyed])
      // a keyed element is headed, the key and its window last
      const element = (yield* Effect.promise(() => raw.lindex(key("r"), 0)))!
      assert.deepStrictEqual(JSON.parse(element.slice(1, element.indexOf("\n"))), [
        0,
        0,
        0,
        keyed.id,
        false,
        "order-42",
        1000
      ])
      assert.strictEqual(yield* Effect.promise(() => raw.hget(key("k"), "order-42")), keyed.id)
      assert.strictEqual(yield* Effect.promise(() => raw.zcard(key("kx"))), 0)
      // its ack starts the window, scored in Clock time
      const taken = yield* broker.take({ queue, max: 1, lease: "1 minute" })
      const now = yield* Clock.currentTimeMillis
      yield* broker.settle([ack(taken.deliveries[0]!)])
      assert.strictEqual(Number(yield* Effect.promise(() => raw.zscore(key("kx"), "order-42"))), now + 1_000)
      // once it ended, the next keyed enqueue prunes it and takes the key
      yield* TestClock.adjust(1_000)
      const next = { ...message(queue), key: "other", keyTtl: 0 }
      yield* broker.enqueue([next])
      assert.deepStrictEqual(yield* Effect.promise(() => raw.hgetall(key("k"))), { other: next.id })
      yield* broker.settle([ack((yield* broker.take({ queue, max: 1, lease: "1 minute" })).deliveries[0]!)])
      const dump = yield* dumpPrefix(raw, prefix)
      assert.notProperty(dump, key("k"))
      assert.notProperty(dump, key("kx"))
    }).pipe(Effect.scoped))

  it.effect("stores no limits for a keyed message left out, and drops a cancelled message's limits", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup()
      const limits = { concurrency: { key: "c", limit: 1 } }
      const first = { ...message(queue), key: "k", limits }
      const second = { ...message(queue), key: "k", limits }
      const enqueued = yield* broker.enqueue([first, second])
      assert.deepStrictEqual([...enqueued.duplicates], [[second.id, first.id]])
      assert.deepStrictEqual(Object.keys(yield* Effect.promise(() => raw.hgetall(key("lim")))), [first.id])
      assert.deepStrictEqual(yield* broker.cancel(queue, [first.id]), ["cancelled"])
      assert.strictEqual(yield* Effect.promise(() => raw.exists(key("lim"), key("k"), key("r"))), 0)
    }).pipe(Effect.scoped))

  it.effect("times a delayed message as 12 hex digits of the sequence + its element, and reads unprefixed timers", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup()
      const now = yield* Clock.currentTimeMillis
      const [a, b] = [message(queue, { eta: now + 1_000 }), message(queue, { eta: now + 1_000 })]
      yield* broker.enqueue([a!, b!])
      const seq = Number(yield* Effect.promise(() => raw.get(key("s"))))
      const hex = (n: number) => n.toString(16).padStart(12, "0")
      assert.deepStrictEqual(yield* Effect.promise(() => raw.zrange(key("t"), "0", "-1", "WITHSCORES")), [
        hex(seq - 1) + stored(a!),
        String(now + 1_000),
        hex(seq) + stored(b!),
        String(now + 1_000)
      ])
      // Timers written without the prefix (before it existed) start with `#` or `{` and are read as they are
      const compact = message(queue)
      yield* Effect.promise(() =>
        raw.zadd(key("t"), now + 1_000, `#[0,0,0,"headed"]\n{"n":1}`, now + 1_000, JSON.stringify(compact.body))
      )
      yield* TestClock.adjust(1_000)
      const taken = yield* broker.take({ queue, max: 10, lease: "1 minute" })
      // Equal etas: in member byte order, `#` < digits < `{`
      assert.deepStrictEqual(taken.deliveries.map((d) => d.id), ["headed", a!.id, b!.id, compact.id])
      assert.deepStrictEqual(taken.deliveries.map((d) => d.body), [{ n: 1 }, a!.body, b!.body, compact.body])
    }).pipe(Effect.scoped))

  it.effect("stores a dead letter under the dead-letter keys, with its reason, and a backstop expiry", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup()
      const m = message(queue)
      yield* broker.enqueue([m])
      const taken = yield* broker.take({ queue, max: 1, lease: "1 minute" })
      yield* broker.settle([{ _tag: "DeadLetter", delivery: taken.deliveries[0]!, reason: boom }])
      const score = yield* Effect.promise(() => raw.zscore(key("d"), m.id))
      assert.isNotNull(score)
      const element = (yield* Effect.promise(() => raw.hget(key("dh"), m.id)))!
      const newline = element.indexOf("\n")
      assert.deepStrictEqual(JSON.parse(element.slice(1, newline)), [0, 1, 1, m.id, boom])
      assert.strictEqual(element.slice(newline + 1), stored(m))
      assert.isAbove(yield* Effect.promise(() => raw.pttl(key("d"))), 7 * 24 * 3_600_000)
      // Nothing else holds it
      assert.strictEqual(yield* Effect.promise(() => raw.hlen(key("f"))), 0)
      assert.strictEqual(yield* Effect.promise(() => raw.llen(key("r"))), 0)
    }).pipe(Effect.scoped))

  it.effect("drops dead letters older than the TTL, inside the dead-letter script", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup({ deadLetterTtl: "1 hour" })
      const deadLetter = (m: Broker.Outgoing) =>
        Effect.gen(function*() {
          yield* broker.enqueue([m])
          const taken = yield* broker.take({ queue, max: 1, lease: "1 minute" })
          yield* broker.settle([{ _tag: "DeadLetter", delivery: taken.deliveries[0]!, reason: boom }])
        })
      const old = message(queue)
      const young = message(queue)
      yield* deadLetter(old)
      yield* TestClock.adjust("40 minutes")
      yield* deadLetter(young)
      assert.strictEqual(yield* Effect.promise(() => raw.zcard(key("d"))), 2)
      yield* TestClock.adjust("20 minutes")
      // The listing hides and trims the expired one
      assert.deepStrictEqual((yield* broker.deadLetters(queue)).map((d) => d.id), [young.id])
      assert.strictEqual((yield* broker.stats(queue)).dead, 1)
      assert.strictEqual(yield* Effect.promise(() => raw.zcard(key("d"))), 1)
      // its element and its attempt history are gone from :dh
      assert.sameMembers(yield* Effect.promise(() => raw.hkeys(key("dh"))), [young.id, `h:${young.id}`])
      // And so does the next dead-letter
      yield* TestClock.adjust("1 hour")
      yield* deadLetter(message(queue))
      assert.strictEqual(yield* Effect.promise(() => raw.zcard(key("d"))), 1)
      assert.isNull(yield* Effect.promise(() => raw.hget(key("dh"), young.id)))
      assert.isNull(yield* Effect.promise(() => raw.hget(key("dh"), `h:${young.id}`)))
    }).pipe(Effect.scoped))

  it.effect("keeps at most deadLetterMax dead letters, dropping the oldest", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup({ deadLetterMax: 3 })
      const messages = Array.from({ length: 5 }, () => message(queue))
      yield* broker.enqueue(messages)
      const taken = yield* broker.take({ queue, max: 5, lease: "1 minute" })
      for (const delivery of taken.deliveries) {
        yield* broker.settle([{ _tag: "DeadLetter", delivery, reason: boom }])
        yield* TestClock.adjust(1)
      }
      assert.deepStrictEqual((yield* broker.deadLetters(queue)).map((d) => d.id), messages.slice(2).map((m) => m.id))
      assert.strictEqual(yield* Effect.promise(() => raw.zcard(key("d"))), 3)
      assert.sameMembers(
        yield* Effect.promise(() => raw.hkeys(key("dh"))),
        messages.slice(2).flatMap((m) => [m.id, `h:${m.id}`])
      )
    }).pipe(Effect.scoped))

  it.effect("hands over a body that is not JSON as the raw string", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup()
      // A foreign producer pushes an element by hand: a headed one with a broken body, and a compact one
      yield* Effect.promise(() => raw.rpush(key("r"), `#[0,0,0,"bad"]\nnot json`, `{"id":"ok","n":1}`))
      const taken = yield* broker.take({ queue, max: 2, lease: "1 minute" })
      assert.deepStrictEqual(taken.deliveries.map((d) => [d.id, d.body]), [["bad", "not json"], ["ok", {
        id: "ok",
        n: 1
      }]])
    }).pipe(Effect.scoped))

  it.effect("fails enqueue with a BrokerError for a body that is not JSON-serialisable", () =>
    Effect.gen(function*() {
      const { broker, queue } = yield* setup()
      const error = yield* Effect.flip(broker.enqueue([{ id: "b", queue, priority: 0, eta: 0, body: 1n }]))
      assert.strictEqual(error._tag, "BrokerError")
      assert.strictEqual(error.operation, "enqueue")
      const undef = yield* Effect.flip(broker.enqueue([{ id: "u", queue, priority: 0, eta: 0, body: undefined }]))
      assert.include(undef.message, "not JSON-serialisable")
      const nan = yield* Effect.flip(broker.enqueue([{ id: "n", queue, priority: Number.NaN, eta: 0, body: 1 }]))
      assert.include(nan.message, "\"priority\" must be an integer")
    }).pipe(Effect.scoped))

  it.effect("keeps a failed message's attempt history in :dh under h:<id>, and drops it when the message is acked", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup()
      const m = message(queue)
      yield* broker.enqueue([m])
      const now = yield* Clock.currentTimeMillis
      const first = (yield* broker.take({ queue, max: 1, lease: "1 minute" })).deliveries[0]!
      yield* broker.settle([{ _tag: "Retry", delivery: first, eta: now, error: boom }])
      const history = yield* Effect.promise(() => raw.hget(key("dh"), `h:${m.id}`))
      assert.deepStrictEqual(JSON.parse(history!), [{ at: now, ...boom }])
      // no dead letter is counted from it
      assert.strictEqual((yield* broker.stats(queue)).dead, 0)
      assert.deepStrictEqual(yield* broker.deadLetters(queue), [])
      const second = (yield* broker.take({ queue, max: 1, lease: "1 minute" })).deliveries[0]!
      yield* broker.settle([ack(second)])
      assert.deepStrictEqual(yield* Effect.promise(() => raw.hkeys(key("dh"))), [])
    }).pipe(Effect.scoped))

  it.effect("drops the history of a cancelled, purged or requeued message; purging all keeps live histories", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup()
      const [waiting, purged, live, requeued] = Array.from({ length: 4 }, () => message(queue))
      yield* broker.enqueue([waiting!, purged!, live!, requeued!])
      const now = yield* Clock.currentTimeMillis
      const taken = (yield* broker.take({ queue, max: 4, lease: "1 minute" })).deliveries
      // all four failed once: waiting and live wait for a retry, purged and requeued are dead letters
      yield* broker.settle([
        { _tag: "Retry", delivery: taken[0]!, eta: now + 60_000, error: boom },
        { _tag: "DeadLetter", delivery: taken[1]!, reason: boom },
        { _tag: "Retry", delivery: taken[2]!, eta: now + 60_000, error: boom },
        { _tag: "DeadLetter", delivery: taken[3]!, reason: boom }
      ])
      const fields = () => Effect.promise(() => raw.hkeys(key("dh")))
      assert.sameMembers(yield* fields(), [
        `h:${waiting!.id}`,
        purged!.id,
        `h:${purged!.id}`,
        `h:${live!.id}`,
        requeued!.id,
        `h:${requeued!.id}`
      ])
      assert.deepStrictEqual(yield* broker.cancel(queue, [waiting!.id]), ["cancelled"])
      assert.strictEqual(yield* broker.purgeDeadLetters(queue, { ids: [purged!.id] }), 1)
      assert.strictEqual(yield* broker.requeueDeadLetters(queue, { ids: [requeued!.id] }), 1)
      assert.sameMembers(yield* fields(), [`h:${live!.id}`])
      // purging all dead letters leaves the history of a message that is still alive
      const again = (yield* broker.take({ queue, max: 1, lease: "1 minute" })).deliveries[0]!
      yield* broker.settle([{ _tag: "DeadLetter", delivery: again, reason: boom }])
      assert.strictEqual(yield* broker.purgeDeadLetters(queue), 1)
      assert.deepStrictEqual(yield* fields(), [`h:${live!.id}`])
      assert.strictEqual((yield* broker.stats(queue)).delayed, 1)
    }).pipe(Effect.scoped))

  it.effect("reads a malformed stored history as an empty one, and a retry starts it afresh", () =>
    Effect.gen(function*() {
      const { broker, key, queue, raw } = yield* setup()
      const [a, b] = [message(queue), message(queue)]
      yield* broker.enqueue([a, b])
      const taken = (yield* broker.take({ queue, max: 2, lease: "1 minute" })).deliveries
      yield* Effect.promise(() => raw.hset(key("dh"), `h:${b.id}`, "not json"))
      const now = yield* Clock.currentTimeMillis
      yield* broker.settle(taken.map((delivery) => ({ _tag: "DeadLetter", delivery, reason: boom })))
      yield* Effect.promise(() => raw.hset(key("dh"), `h:${a.id}`, JSON.stringify([{ at: "soon", tag: 1 }])))
      assert.deepStrictEqual((yield* broker.deadLetter(queue, a.id))?.history, [])
      assert.deepStrictEqual((yield* broker.deadLetter(queue, b.id))?.history, [{ at: now, ...boom }])
      assert.deepStrictEqual((yield* broker.deadLetters(queue)).map((d) => d.history.length), [0, 1])
      assert.deepStrictEqual((yield* broker.deadLetters(queue, { offset: 1 })).map((d) => d.history.length), [1])
    }).pipe(Effect.scoped))

  it.effect("failed(): an in-flight record has failed attempts only when its header's attempts field is not 0", () =>
    Effect.gen(function*() {
      const raw = yield* rawClient()
      const lua = "local byte, sub = string.byte, string.sub\n" + Scripts.failed +
        "return failed(ARGV[1], tonumber(ARGV[2])) and 1 or 0"
      const failed = (record: string) => Effect.promise(() => raw.eval(lua, 0, record, record.indexOf(" ") + 2))
      const cases: ReadonlyArray<readonly [string, number]> = [
        ["tok1 {\"id\":\"a\",\"actor\":\"noop\"}", 0],
        ["tok1 #[0,0,1,\"a\"]\n{\"id\":\"a\"}", 0],
        ["tok1 #[-5,0,3,\"a\"]\n{}", 0],
        ["tok1 #[0,0,1,\"a\",false,\"key\",60000]\n{}", 0],
        ["tok1 #[0,1,2,\"a\",{\"tag\":\"Boom\",\"message\":\"boom\"}]\n{}", 1],
        ["tok1 #[12,10,11,\"a\",{\"tag\":\"Boom\",\"message\":\"x\"}]\n{}", 1],
        ["tok1 #[0,2,3,\"a\",{\"tag\":\"B\",\"message\":\"m\"},\"key\",0]\n{}", 1],
        ["tok1 raw text", 0]
      ]
      for (const [record, expected] of cases) assert.strictEqual(yield* failed(record), expected, record)
    }).pipe(Effect.scoped))

  it.effect("readHistory: a stored history, or an empty one for anything malformed", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(Inspect.readHistory(""), [])
      assert.deepStrictEqual(Inspect.readHistory("{"), [])
      assert.deepStrictEqual(Inspect.readHistory("{}"), [])
      assert.deepStrictEqual(Inspect.readHistory("[{\"at\":1,\"tag\":\"A\"}]"), [])
      assert.deepStrictEqual(Inspect.readHistory("[{\"at\":1,\"tag\":\"A\",\"message\":\"m\",\"x\":2}]"), [
        { at: 1, tag: "A", message: "m" }
      ])
    }))
})
