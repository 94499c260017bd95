/**
 * Errand's Redis broker: the `Broker` contract on Redis (≥ 6.2), with ioredis.
 *
 * **Guarantees**
 *
 * - At-least-once delivery with fenced leases: `take` leases each message under a fresh token; a settlement or
 *   extension whose lease is no longer current (it lapsed and was swept back to the queue, or was settled) is
 *   rejected and changes nothing. A lapsed lease is returned to its queue by a deterministic sweep inside the next
 *   script call on that queue, raising `deliveries`.
 * - Every state change is one atomic Lua script; delays and retries stay in Redis (a sorted set) and are promoted
 *   inside those scripts, never held in worker memory. Keys are documented in `packages/redis/README.md`; all keys of
 *   a queue share the hash tag `{prefix:queue}` and every script declares the keys it touches (Redis Cluster safe).
 * - Time comes from Effect's `Clock` and is passed to the scripts, so `TestClock` drives delays and leases. Hosts
 *   that produce and consume must therefore keep their clocks roughly synchronised (as BullMQ requires).
 * - A `take` with `wait` blocks on Redis (`BZPOPMIN` on the queue's wake-up key) on a dedicated connection, and wakes
 *   within milliseconds of an enqueue, release or retry from any process, or when a delayed message comes due. The
 *   take script is pipelined behind the `BZPOPMIN`, so Redis leases the moment the wait ends, without a second round
 *   trip; its lease runs from the end of the wait at the latest (up to the wait longer than asked). A wait that is
 *   interrupted releases at once whatever that take leased.
 * - Commands issued while Redis is unreachable fail at once with a `BrokerError`; ioredis reconnects by itself.
 * - Standalone Redis or Redis Cluster (`cluster: true`): on a cluster, each queue lives in the slot of its hash tag,
 *   calls spanning queues are split per queue, and blocking waits run on connections to the node serving the queue.
 *
 * @since 0.1.0
 */
import { Broker, ErrandError, Results } from "@errand/core"
import { Clock, Config, Context, Duration, Effect, Layer, Redacted, Schedule, Schema, type Scope } from "effect"
import { type Cluster, Redis, type RedisOptions } from "ioredis"
import { randomBytes } from "node:crypto"
import { brokerError, call, invalid } from "./internal/calls.ts"
import * as Codec from "./internal/codec.ts"
import * as Connection from "./internal/connection.ts"
import * as Groups from "./internal/groups.ts"
import * as Inspect from "./internal/inspect.ts"
import * as Keys from "./internal/keys.ts"
import * as Permissions from "./internal/permissions.ts"
import * as Scripts from "./internal/scripts.ts"
import * as Url from "./internal/url.ts"
import * as RedisResults from "./RedisResults.ts"

/**
 * The Redis broker could not be built: the URL or options are invalid, Redis could not be reached in time, or the
 * Redis user lacks a permission the broker needs (`MissingPermissions`, with the denied commands in `permissions`).
 * The `url` and `message` never contain the password.
 *
 * @category errors
 * @since 0.1.0
 */
export class RedisBrokerError extends Schema.TaggedError<RedisBrokerError>()("RedisBrokerError", {
  reason: Schema.Literals(["InvalidUrl", "InvalidOptions", "ConnectFailed", "ConnectTimeout", "MissingPermissions"]),
  /** The URL with its password replaced by `***` (no query or fragment; see the README for URLs that do not parse). */
  url: Schema.String,
  message: Schema.String,
  /**
   * With `MissingPermissions`: the ACL permissions the user lacks, as `ACL SETUSER` names them (`client|unblock`,
   * `bzpopmin`, `rpush`…), and `~{<prefix>:*` when the keys of the prefix are denied.
   */
  permissions: Schema.optional(Schema.Array(Schema.String)),
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * Options of the Redis broker.
 *
 * @category models
 * @since 0.1.0
 */
export interface RedisBrokerOptions {
  /**
   * `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS. With `cluster: true`, a node of the cluster
   * (a seed: the others are discovered from it), without a database index; or several seeds, as a comma-separated list
   * (`redis://a:7000,redis://b:7000`) or an array, sharing their scheme, user and password: the client asks them in
   * turn for the cluster's layout, so any of them may be down at start.
   */
  readonly url: string | Redacted.Redacted<string> | ReadonlyArray<string | Redacted.Redacted<string>>
  /**
   * Connect to a Redis Cluster with ioredis's `Cluster` client, seeded by the node of `url`; its credentials and TLS
   * apply to every node. Each queue lives in one slot (its keys share the hash tag `{prefix:queue}`), scripts are
   * routed to the node serving it, and blocking waits use connections to that node. Default `false`.
   */
  readonly cluster?: boolean | undefined
  /** The first part of every key's hash tag, `{prefix:queue}`. Default `"errand"`. Must not contain `{` or `}`. */
  readonly prefix?: string | undefined
  /** How long building the layer (or opening a blocking connection) may wait for Redis. Default 5 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /** How long a command may wait for its reply before failing with a `BrokerError`. Default 5 seconds. */
  readonly commandTimeout?: Duration.Input | undefined
  /**
   * On a cluster, how long an `enqueue` keeps retrying while its queue's slot migrates (Redis answers `TRYAGAIN`/`ASK`
   * until the keys moved, and the client gives up after 16 redirections, about 1.6 s): retried with a backoff
   * (100 ms doubling to 1 s, jittered) for up to this long, then it fails with a `BrokerError` (`applied: "no"`).
   * Default 30 seconds.
   */
  readonly slotMigrationTimeout?: Duration.Input | undefined
  /** How long dead letters are kept. Default 7 days (as Dramatiq). */
  readonly deadLetterTtl?: Duration.Input | undefined
  /** The most dead letters kept per queue; the oldest are dropped beyond it. Default 10,000. */
  readonly deadLetterMax?: number | undefined
  /** The most due timers (delays, lapsed leases) one script call moves back to ready. Default 1,000. */
  readonly sweepBatch?: number | undefined
  /**
   * Extra ioredis options (e.g. `tls` for a custom CA). The broker overrides the connection-lifecycle settings
   * (`lazyConnect`, timeouts, `maxRetriesPerRequest`, `enableOfflineQueue`, `retryStrategy`).
   */
  readonly redisOptions?: RedisOptions | undefined
}

type BrokerShape = Context.Service.Shape<typeof Broker.Broker>
type Delivery = Broker.Delivery
type Settlement = Broker.Settlement

/** What is wrong with a duration option (malformed, not above 0, or infinite), or `undefined`. */
const badDuration = (name: string, input: Duration.Input | undefined): string | undefined => {
  if (input === undefined) return undefined
  const parsed = typeof input === "number" && Number.isNaN(input) ? undefined : Duration.fromInput(input)
  const millis = parsed === undefined || parsed._tag === "None" ? Number.NaN : Duration.toMillis(parsed.value)
  return millis > 0 && Number.isFinite(millis)
    ? undefined
    : `${name} must be a finite duration above 0 (got ${String(input)})`
}

const settlementKind = { Ack: "a", Retry: "r", DeadLetter: "d", Release: "l" } as const

/** Appends the ARGV of settlements: n, then n × (kind, id, token, eta, json). */
const pushSettlements = (args: Array<string | number>, settlements: ReadonlyArray<Settlement>): void => {
  args.push(settlements.length)
  for (const s of settlements) {
    switch (s._tag) {
      case "Ack":
      case "Release":
        args.push(settlementKind[s._tag], s.delivery.id, s.delivery.lease, "", "")
        break
      case "Retry":
        args.push("r", s.delivery.id, s.delivery.lease, s.eta, Codec.encodeLastError(s.error))
        break
      case "DeadLetter":
        // the eta slot says whether this delivery ran the handler: a dead letter counts handler runs
        args.push("d", s.delivery.id, s.delivery.lease, s.ran === false ? 0 : 1, Codec.encodeLastError(s.reason))
        break
    }
  }
}

/**
 * The limits of a message as the scripts read them: `{"r":[key,limit,windowMs],"c":[key,limit]}`. They were checked
 * by `Broker.refuseInvalid` (integer limits ≥ 1, a finite window > 0) before any call is built.
 */
const encodeLimits = (limits: Broker.Limits): string => {
  const { concurrency, rate } = limits
  const encoded: { r?: [string, number, number]; c?: [string, number] } = {}
  if (rate !== undefined) encoded.r = [rate.key, Math.floor(rate.limit), rate.windowMillis]
  if (concurrency !== undefined) encoded.c = [concurrency.key, Math.floor(concurrency.limit)]
  return JSON.stringify(encoded)
}

/** Groups items by queue, without allocating when they all share one (the usual case). */
const byQueue = <A>(items: ReadonlyArray<A>, queueOf: (a: A) => string): ReadonlyArray<ReadonlyArray<A>> => {
  if (items.length === 0) return []
  const first = queueOf(items[0]!)
  if (items.every((item) => queueOf(item) === first)) return [items]
  const groups = new Map<string, Array<A>>()
  for (const item of items) {
    const queue = queueOf(item)
    const group = groups.get(queue)
    if (group === undefined) groups.set(queue, [item])
    else group.push(item)
  }
  return Array.from(groups.values())
}

/**
 * Logs a warning when Redis may evict keys under memory pressure (a `maxmemory-policy` other than `noeviction`): it
 * would silently drop queued messages. Managed services that hide `INFO` are left alone.
 */
const warnOnEviction = (client: Redis | Cluster, redacted: string) =>
  Effect.tryPromise(() => client.info("memory")).pipe(
    Effect.flatMap((info) => {
      const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1]
      return policy === undefined || policy === "noeviction"
        ? Effect.void
        : Effect.logWarning(
          `Redis at ${redacted} has maxmemory-policy ${policy}: under memory pressure it may evict queued messages. ` +
            "Set maxmemory-policy to noeviction for Errand's queues."
        )
    }),
    Effect.ignore,
    Effect.annotateLogs({ module: "RedisBroker" })
  )

/** The URLs of the `url` option: one, a comma-separated list, or an array of either. */
const rawUrlsOf = (url: RedisBrokerOptions["url"]): Array<string> => {
  const list: ReadonlyArray<string | Redacted.Redacted<string>> = typeof url === "string" || Redacted.isRedacted(url)
    ? [url]
    : url
  return list.flatMap((one) => Url.split(Redacted.isRedacted(one) ? Redacted.value(one) : one))
}

/**
 * Builds the broker in a scope: connects (failing fast with a `RedisBrokerError`), checks the user's ACL permissions
 * (see the README), defines the scripts, and closes every connection when the scope closes.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: RedisBrokerOptions): Effect.Effect<BrokerShape, RedisBrokerError, Scope.Scope> =>
  Effect.map(makeWithResults(options), (built) => built.broker)

/**
 * Builds the broker and its `Results` store (on the same connection) in a scope, as `layer` provides them.
 *
 * @category constructors
 * @since 0.2.0
 */
export const makeWithResults = Effect.fnUntraced(function*(
  options: RedisBrokerOptions
): Effect.fn.Return<
  { readonly broker: BrokerShape; readonly results: Results.Results["Service"] },
  RedisBrokerError,
  Scope.Scope
> {
  const seeds: Array<Url.CheckedUrl> = []
  for (const rawUrl of rawUrlsOf(options.url)) {
    const checkedSeed = Url.check(rawUrl)
    if ("reason" in checkedSeed) {
      return yield* new RedisBrokerError({
        reason: checkedSeed.reason,
        url: checkedSeed.redacted,
        message: checkedSeed.message
      })
    }
    seeds.push(checkedSeed)
  }
  const checked: Url.CheckedUrl = { url: seeds[0]!.url, redacted: seeds.map((seed) => seed.redacted).join(",") }
  const prefix = options.prefix ?? "errand"
  const deadLetterMax = options.deadLetterMax ?? 10_000
  const sweepBatch = Math.min(options.sweepBatch ?? Scripts.maxBatch, Scripts.maxBatch)
  const cluster = options.cluster === true
  const parsedSeeds = seeds.map((seed) => new URL(seed.url))
  const db = parsedSeeds.map((seed) => seed.pathname.replace(/^\//, "")).find((path) => path !== "" && path !== "0")
  const first = parsedSeeds[0]!
  const badOption = seeds.length > 1 && !cluster
    ? `several URLs are seed nodes of a Redis Cluster: they need cluster: true`
    : parsedSeeds.some((seed) =>
        seed.protocol !== first.protocol || seed.username !== first.username || seed.password !== first.password
      )
    ? "the seed URLs of a cluster must share their scheme, user name and password"
    : cluster && db !== undefined
    ? `a Redis Cluster has only database 0 (the URL names database ${db})`
    : prefix === "" || /[{}]/.test(prefix)
    ? `prefix must be non-empty and must not contain "{" or "}" (got "${prefix}")`
    : !(Number.isInteger(deadLetterMax) && deadLetterMax > 0)
    ? `deadLetterMax must be a positive integer (got ${deadLetterMax})`
    : !(Number.isInteger(sweepBatch) && sweepBatch > 0)
    ? `sweepBatch must be a positive integer (got ${sweepBatch})`
    : badDuration("connectTimeout", options.connectTimeout) ?? badDuration("commandTimeout", options.commandTimeout) ??
      badDuration("deadLetterTtl", options.deadLetterTtl) ??
      badDuration("slotMigrationTimeout", options.slotMigrationTimeout)
  if (badOption !== undefined) {
    return yield* new RedisBrokerError({ reason: "InvalidOptions", url: checked.redacted, message: badOption })
  }
  const connectTimeout = Duration.toMillis(options.connectTimeout ?? "5 seconds")
  const commandTimeout = Duration.toMillis(options.commandTimeout ?? "5 seconds")
  const deadLetterTtl = Duration.toMillis(options.deadLetterTtl ?? "7 days")
  /** Retries a command refused while its slot migrates (it did not run), for up to `slotMigrationTimeout`. */
  const migrationRetry = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("1 second")]).pipe(
    Schedule.jittered,
    Schedule.upTo({ duration: options.slotMigrationTimeout ?? "30 seconds" })
  )
  const duringMigrations = <A>(effect: Effect.Effect<A, ErrandError.BrokerError>) =>
    cluster
      ? Effect.retry(effect, {
        schedule: migrationRetry,
        while: (error) => Connection.isRedirectionLimit(error.cause)
      })
      : effect

  const client = yield* Effect.acquireRelease(
    Effect.suspend(() => {
      const settings = { connectTimeout, commandTimeout, extra: options.redisOptions }
      const created: Redis | Cluster = cluster
        ? Connection.makeCluster(seeds.map((seed) => seed.url), settings)
        : Connection.makeClient(checked.url, settings)
      return Connection.connect(created, checked.redacted, connectTimeout).pipe(
        Effect.as(created),
        Effect.mapError((failure) =>
          new RedisBrokerError({
            reason: failure.reason,
            url: checked.redacted,
            message: failure.message,
            cause: failure.cause
          })
        )
      )
    }),
    Connection.close
  )
  yield* warnOnEviction(client, checked.redacted)
  const missing = yield* Permissions.check(client, prefix)
  if (missing.commands.length > 0 || missing.keys) {
    return yield* new RedisBrokerError({
      reason: "MissingPermissions",
      url: checked.redacted,
      message: `${Permissions.explain(missing, prefix)} (Redis at ${checked.redacted})`,
      permissions: missing.keys ? [...missing.commands, `~{${prefix}:*`] : missing.commands
    })
  }
  const redis = Scripts.define(client)
  // Blocking connections get the scripts too: a take is pipelined behind each wait.
  const pool = client instanceof Redis
    ? Connection.makeBlockingPool(client, checked.redacted, connectTimeout, Scripts.define)
    : Connection.makeClusterBlockingPool(client, checked.redacted, connectTimeout, Scripts.define)
  yield* Effect.addFinalizer(() => pool.close)

  const keysOf = Keys.cache(prefix)
  // Lease tokens: a random per-broker tag, a per-call counter, and the message's index within the call.
  const tokenTag = randomBytes(6).toString("base64url")
  let tokenCounter = 0
  const nextTokenBase = () => `${tokenTag}.${(tokenCounter++).toString(36)}.`

  /**
   * The ARGV of one enqueue call (see the enqueue script), or why a message cannot be enqueued. Messages ready now
   * with priority 0 (the usual case) are passed as bare elements, in order; the others as (eta, priority, element).
   */
  const enqueueArgs = (
    keys: Keys.QueueKeys,
    now: number,
    chunk: ReadonlyArray<Broker.Outgoing>
  ): Array<string | number> | string => {
    const args: Array<string | number> = [...keys.all, now, sweepBatch, 0, 0]
    let other: Array<string | number> | undefined
    for (const message of chunk) {
      if (message.key !== undefined) return keyedEnqueueArgs([...keys.all, now, sweepBatch, 0, 0], chunk)
      const { eta, priority } = message
      const element = Codec.encode(message.id, priority, message.body, message.queue)
      if (element === undefined) return `Message ${message.id}: its body is not JSON-serialisable`
      if (priority === 0 && eta <= now) args.push(element)
      else (other ??= []).push(eta, priority, element)
    }
    const plain = args.length - Keys.keyCount - 4
    args[Keys.keyCount + 2] = plain
    if (other !== undefined) {
      args[Keys.keyCount + 3] = other.length / 3
      for (const value of other) args.push(value)
    }
    const limited = limitsArgs(chunk)
    if (limited !== undefined) args.push(limited.length / 2, ...limited)
    return args
  }

  /** The (id, limits JSON) pairs of the messages that have limits, or `undefined` when none has. */
  const limitsArgs = (chunk: ReadonlyArray<Broker.Outgoing>): Array<string> | undefined => {
    let limited: Array<string> | undefined
    for (const message of chunk) {
      if (message.limits !== undefined) (limited ??= []).push(message.id, encodeLimits(message.limits))
    }
    return limited
  }

  /**
   * The ARGV of a batch with idempotency keys: no plain or other part, the limits part (possibly empty), then every
   * message in the keyed part, in order, as (eta, priority, element, key or "", id).
   */
  const keyedEnqueueArgs = (
    args: Array<string | number>,
    chunk: ReadonlyArray<Broker.Outgoing>
  ): Array<string | number> | string => {
    const limited = limitsArgs(chunk)
    if (limited === undefined) args.push(0)
    else args.push(limited.length / 2, ...limited)
    args.push(chunk.length)
    for (const message of chunk) {
      const { eta, priority, key } = message
      const element = key === undefined
        ? Codec.encode(message.id, priority, message.body, message.queue)
        : Codec.encodeKeyed(message.id, priority, message.body, key, message.keyTtl ?? 0, message.queue)
      if (element === undefined) return `Message ${message.id}: its body is not JSON-serialisable`
      args.push(eta, priority, element, key ?? "", message.id)
    }
    return args
  }

  const withoutKey = (message: Broker.Outgoing): Broker.Outgoing => {
    const { key: _key, keyTtl: _keyTtl, ...rest } = message
    return rest
  }

  /** The suppressed messages of an enqueue reply (keyed part index, holder id)…, or `undefined` when none. */
  const duplicatesOf = (
    chunk: ReadonlyArray<Broker.Outgoing>,
    reply: ReadonlyArray<number | string>
  ): Map<string, string> | undefined => {
    if (reply.length === 0) return undefined
    const duplicates = new Map<string, string>()
    for (let i = 0; i < reply.length; i += 2) duplicates.set(chunk[Number(reply[i])]!.id, String(reply[i + 1]))
    return duplicates
  }

  /** Merges the suppressed messages of several calls. */
  const mergeDuplicates = (parts: ReadonlyArray<Map<string, string> | undefined>): Map<string, string> | undefined => {
    let duplicates: Map<string, string> | undefined
    for (const part of parts) {
      if (part === undefined) continue
      if (duplicates === undefined) duplicates = part
      else for (const [id, holder] of part) duplicates.set(id, holder)
    }
    return duplicates
  }

  const toEnqueued = (duplicates: Map<string, string> | undefined): Broker.Enqueued =>
    duplicates === undefined ? Broker.allEnqueued : { duplicates }

  /** One enqueue call: up to `maxBatch` messages of one queue. */
  const enqueueChunk = (keys: Keys.QueueKeys, chunk: ReadonlyArray<Broker.Outgoing>) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const args = enqueueArgs(keys, now, chunk)
      return typeof args === "string"
        ? Effect.fail(invalid("enqueue", args))
        : Effect.map(
          duringMigrations(call("enqueue", () => redis.errand_enqueue(...args))),
          (reply) => duplicatesOf(chunk, reply)
        )
    })

  const registryKey = Keys.registry(prefix)
  /** When this broker last added each queue to the registry (`queues`): re-added once a minute, self-healing. */
  const registeredAt = new Map<string, number>()
  const needsRegistering = (queue: string): boolean => {
    const last = registeredAt.get(queue)
    return last === undefined || Date.now() - last >= 60_000
  }
  /**
   * Adds a queue to the registry after its messages were enqueued, unless done in the last minute. Best effort: the
   * registry only serves listings, so a failure is not the enqueue's (the next enqueue tries again).
   */
  const register = (queue: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (!needsRegistering(queue)) return Effect.void
      const now = Date.now()
      return call("register", () => client.sadd(registryKey, queue)).pipe(
        Effect.andThen(Effect.sync(() => registeredAt.set(queue, now))),
        Effect.ignore
      )
    })

  /** Messages of one queue, in calls of up to `maxBatch` (each atomic), in order. */
  const enqueueGroup = (
    messages: ReadonlyArray<Broker.Outgoing>
  ): Effect.Effect<Map<string, string> | undefined, ErrandError.BrokerError> => {
    const queue = messages[0]!.queue
    const keys = keysOf(queue)
    return needsRegistering(queue)
      ? Effect.tap(enqueueChunks(keys, messages), () => register(queue))
      : enqueueChunks(keys, messages)
  }

  const enqueueChunks = (keys: Keys.QueueKeys, messages: ReadonlyArray<Broker.Outgoing>) => {
    if (messages.length <= Scripts.maxBatch) return enqueueChunk(keys, messages)
    const chunks: Array<ReadonlyArray<Broker.Outgoing>> = []
    for (let from = 0; from < messages.length; from += Scripts.maxBatch) {
      chunks.push(messages.slice(from, from + Scripts.maxBatch))
    }
    return Effect.map(Effect.forEach(chunks, (chunk) => enqueueChunk(keys, chunk)), mergeDuplicates)
  }

  /** The ARGV of a settle call (see the settle script). */
  const settleArgs = (keys: Keys.QueueKeys, now: number, settlements: ReadonlyArray<Settlement>) => {
    const args: Array<string | number> = [...keys.all, now, deadLetterTtl, deadLetterMax]
    pushSettlements(args, settlements)
    return args
  }

  const settleGroup = Effect.fnUntraced(function*(settlements: ReadonlyArray<Settlement>) {
    const keys = keysOf(settlements[0]!.delivery.queue)
    const now = yield* Clock.currentTimeMillis
    const args = settleArgs(keys, now, settlements)
    const rejected = yield* call("settle", () => redis.errand_settle(...args))
    return rejected.map((index) => settlements[index]!.delivery.id)
  })

  const settle = (settlements: ReadonlyArray<Settlement>) => {
    const groups = byQueue(settlements, (s) => s.delivery.queue)
    return groups.length === 1
      ? settleGroup(groups[0]!)
      : Effect.map(
        Effect.forEach(groups, settleGroup, { concurrency: "unbounded" }),
        (rejected) => rejected.flat()
      )
  }

  type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  type TakeReply = [Array<number>, Array<string>, string | null]

  /** The ARGV of a take, up to its settlements (see the take script). */
  const takeArgs = (
    keys: Keys.QueueKeys,
    now: number,
    max: number,
    expires: number,
    base: string,
    wantNext: boolean
  ): Array<string | number> => [
    ...keys.all,
    now,
    max,
    expires,
    base,
    wantNext ? 1 : 0,
    sweepBatch,
    deadLetterTtl,
    deadLetterMax
  ]

  /**
   * Releases at once what a take leased for a wait that was then interrupted (nobody will run it), instead of
   * leaving it leased until the lease lapses. Best effort: if this fails, the lease lapses and a sweep returns it.
   */
  const releaseOrphans = (keys: Keys.QueueKeys, elements: ReadonlyArray<string>, base: string, now: number) => {
    if (elements.length === 0) return
    const args: Array<string | number> = [...keys.all, now, deadLetterTtl, deadLetterMax]
    args.push(elements.length)
    for (let i = 0; i < elements.length; i++) {
      const lease = base + (i + 1)
      args.push("l", Codec.idOf(elements[i]!, lease), lease, "", "")
    }
    redis.errand_settle(...args).catch(() => {})
  }

  /**
   * Per queue: the next timer (ms, or `null` for none) told by this broker's last take of it that leased fewer than it
   * asked for, so left nothing ready. Until the wake marker is set again nothing becomes ready but a timer coming due,
   * so the next take that would wait goes straight to the blocking wait (and its pipelined take) instead of taking
   * first: one script call per wake-up, not two. Its settlements (a worker's acks) are sent in the same write, just
   * ahead of the wait, by the settle script, which posts the wake-up marker when they made a message ready or delayed
   * (a retry), so the wait then ends at once: at a steady rate a worker makes one round trip per job. Taken by that
   * take; cleared by a full one.
   */
  const drained = new Map<string, number | null>()
  const noteDrained = (queue: string, reply: TakeReply, max: number) => {
    if (reply[1].length < max) drained.set(queue, reply[2] === null ? null : Number(reply[2]))
    else drained.delete(queue)
  }

  // Script calls run uninterruptibly (bounded by commandTimeout), so an interrupted take never leases messages it then
  // drops; only the blocking wait is interruptible.
  const takeLoop = Effect.fnUntraced(function*(request: Broker.TakeRequest, restore: Restore) {
    const queue = request.queue
    const keys = keysOf(queue)
    const max = Math.min(Math.max(1, Math.floor(request.max)), Scripts.maxBatch)
    const leaseMs = Duration.toMillis(request.lease)
    const waitMs = request.wait === undefined ? 0 : Duration.toMillis(request.wait)
    let pending: ReadonlyArray<Settlement> = request.settle ?? []
    let rejected: Array<string> = []
    if (pending.some((s) => s.delivery.queue !== queue)) {
      rejected = [...(yield* settle(pending.filter((s) => s.delivery.queue !== queue)))]
      pending = pending.filter((s) => s.delivery.queue === queue)
    }
    const clock = yield* Clock.Clock
    const start = clock.currentTimeMillisUnsafe()
    /** The reply of the take pipelined behind the last wait, with the token base and expiry it leased under. */
    let woken: { readonly reply: TakeReply; readonly base: string; readonly expires: number } | undefined
    for (;;) {
      const now = yield* Clock.currentTimeMillis
      const remaining = start + waitMs - now
      let reply: TakeReply
      let base: string
      let expires: number
      let hint = woken === undefined && remaining > 0 ? drained.get(queue) : undefined
      // settlements ride ahead of a wait only when one follows (a timed one): otherwise a take script sends them
      if (hint !== undefined && pending.length > 0 && !(Math.min(remaining, (hint ?? Infinity) - now) > 0)) {
        hint = undefined
      }
      /** Settlements to send just ahead of the wait (see `drained`). */
      let ahead: ReadonlyArray<Settlement> = []
      if (woken !== undefined) {
        ;({ reply, base, expires } = woken)
        woken = undefined
        noteDrained(queue, reply, max)
      } else if (hint !== undefined) {
        // the last take left nothing ready: wait at once (see `drained`)
        drained.delete(queue)
        reply = [[], [], hint === null ? null : String(hint)]
        base = ""
        expires = 0
        ahead = pending
      } else {
        base = nextTokenBase()
        expires = now + leaseMs
        const args = takeArgs(keys, now, max, expires, base, remaining > 0)
        pushSettlements(args, pending)
        reply = yield* call("take", () => redis.errand_take(...args))
        if (remaining > 0) noteDrained(queue, reply, max)
        else drained.delete(queue)
      }
      const [rejectedIndices, elements, nextAt] = reply
      for (const index of rejectedIndices) rejected.push(pending[index]!.delivery.id)
      pending = []
      if (elements.length > 0 || remaining <= 0) {
        const deliveries = new Array<Delivery>(elements.length)
        for (let i = 0; i < elements.length; i++) {
          const lease = base + (i + 1)
          const decoded = Codec.decode(elements[i]!, lease, queue)
          deliveries[i] = {
            id: decoded.id,
            queue,
            body: decoded.body,
            attempts: decoded.attempts,
            deliveries: decoded.deliveries,
            lastError: decoded.lastError,
            lease,
            leaseExpiresAt: expires
          }
        }
        return { deliveries, rejected }
      }
      const untilTimer = nextAt === null ? Infinity : Number(nextAt) - now
      const timeout = Math.min(remaining, untilTimer)
      if (timeout > 0 && Number.isFinite(timeout)) {
        // The next take is sent behind the wait and runs the moment a wake-up arrives: no round trip between the
        // wake-up and the lease. It runs at most `timeout` from now, so its lease is counted from then: it holds at
        // least `leaseMs` from the moment it is taken (and at most `timeout` longer). Its `now` is this one, so
        // timers coming due during the wait are swept by the take after it.
        const nextBase = nextTokenBase()
        const nextExpires = now + timeout + leaseMs
        const args = takeArgs(keys, now, max, nextExpires, nextBase, true)
        pushSettlements(args, [])
        args.push(timeout) // it runs up to this long after `now` (rate windows need the real time)
        let settledAhead: Promise<Array<number>> | undefined
        const got = yield* restore(pool.waitThen(
          keys.wake,
          timeout,
          (conn) => (conn as Redis & Scripts.ScriptClient).errand_take(...args),
          (orphan) => releaseOrphans(keys, orphan[1], nextBase, clock.currentTimeMillisUnsafe()),
          ahead.length === 0 ? undefined : (conn) => {
            const settling = (conn as Redis & Scripts.ScriptClient).errand_settle(...settleArgs(keys, now, ahead))
            settling.catch(() => {})
            settledAhead = settling
          }
        )).pipe(Effect.mapError((cause) => brokerError("take", cause)))
        if (settledAhead !== undefined) {
          // its reply came before the wait's: it is already here
          const settled = yield* Effect.exit(call("settle", () => settledAhead!))
          if (settled._tag === "Failure") {
            if (got !== undefined) releaseOrphans(keys, got[1], nextBase, clock.currentTimeMillisUnsafe())
            return yield* Effect.failCause(settled.cause)
          }
          for (const index of settled.value) rejected.push(ahead[index]!.delivery.id)
        }
        if (got !== undefined) woken = { reply: got, base: nextBase, expires: nextExpires }
      } else if (timeout > 0) {
        yield* restore(pool.wait(keys.wake, timeout)).pipe(Effect.mapError((cause) => brokerError("take", cause)))
      }
    }
  })

  const take = (request: Broker.TakeRequest) => Effect.uninterruptibleMask((restore) => takeLoop(request, restore))

  const extendGroup = Effect.fnUntraced(function*(deliveries: ReadonlyArray<Delivery>, leaseMs: number) {
    const keys = keysOf(deliveries[0]!.queue)
    const now = yield* Clock.currentTimeMillis
    const args: Array<string | number> = [...keys.all, now, now + leaseMs]
    for (const delivery of deliveries) args.push(delivery.id, delivery.lease)
    const rejected = yield* call("extend", () => redis.errand_extend(...args))
    return rejected.map((index) => deliveries[index]!.id)
  })

  const deadSelection = (selection: Broker.DeadLetterSelection | undefined): Array<string> | undefined =>
    selection?.ids === undefined ? undefined : [...selection.ids]

  const results = yield* RedisResults.make({ client, prefix, redacted: checked.redacted, connectTimeout })
  const groups = Groups.define(client)
  const inspect = Inspect.define(client)
  const heartbeatKeys = Inspect.heartbeatKeys(prefix)
  const broker = Broker.Broker.of({
    name: "redis",
    enqueue: (messages) => {
      const refused = Broker.refuseInvalid("redis", messages)
      if (refused !== undefined) return Effect.fail(refused)
      const groups = byQueue(messages, (m) => m.queue)
      return groups.length === 0
        ? Effect.succeed(Broker.allEnqueued)
        : groups.length === 1
        ? Effect.map(enqueueGroup(groups[0]!), toEnqueued)
        : Effect.map(
          Effect.forEach(groups, enqueueGroup, { concurrency: "unbounded" }),
          (parts) => toEnqueued(mergeDuplicates(parts))
        )
    },
    take,
    settle: (settlements) => settlements.length === 0 ? Effect.succeed([]) : settle(settlements),
    extend: (deliveries, lease) => {
      if (deliveries.length === 0) return Effect.succeed([])
      const leaseMs = Duration.toMillis(lease)
      const groups = byQueue(deliveries, (d) => d.queue)
      return groups.length === 1
        ? extendGroup(groups[0]!, leaseMs)
        : Effect.map(
          Effect.forEach(groups, (group) => extendGroup(group, leaseMs), { concurrency: "unbounded" }),
          (rejected) => rejected.flat()
        )
    },
    stats: Effect.fnUntraced(function*(queue: string) {
      const now = yield* Clock.currentTimeMillis
      const [ready, delayed, inFlight, dead] = yield* call(
        "stats",
        () => redis.errand_stats(...keysOf(queue).all, now, sweepBatch, deadLetterTtl)
      )
      return { ready, delayed, inFlight, dead }
    }),
    deadLetters: Effect.fnUntraced(function*(queue: string, options?: Broker.DeadLetterPage) {
      const refused = Broker.refuseInvalidPage("redis", options)
      if (refused !== undefined) return yield* refused
      const limit = options?.limit === undefined ? -1 : Math.floor(options.limit)
      if (limit === 0 || limit < -1) return []
      const offset = options?.offset ?? 0
      const now = yield* Clock.currentTimeMillis
      const keys = keysOf(queue)
      const flat = yield* call(
        "deadLetters",
        () => redis.errand_deadList(...keys.all, now, deadLetterTtl, deadLetterMax, limit, offset)
      )
      const letters = new Array<Broker.DeadLetter>(flat.length / 4)
      for (let i = 0; i < letters.length; i++) {
        letters[i] = Inspect.toDeadLetter(queue, flat[4 * i]!, flat[4 * i + 1]!, flat[4 * i + 2]!, flat[4 * i + 3]!)
      }
      return letters
    }),
    deadLetter: Effect.fnUntraced(function*(queue: string, id: string) {
      const now = yield* Clock.currentTimeMillis
      const keys = keysOf(queue)
      const found = yield* call(
        "deadLetter",
        () => inspect.errand_inspect_deadOne(keys.dead, keys.deadBodies, Inspect.deadAfter(now, deadLetterTtl), id)
      )
      return found.length === 0 ? undefined : Inspect.toDeadLetter(queue, id, found[0], found[1], found[2])
    }),
    heartbeat: (heartbeat) => {
      const refused = Broker.refuseInvalidHeartbeat("redis", heartbeat)
      if (refused !== undefined) return Effect.fail(refused)
      let report: string | undefined
      try {
        report = JSON.stringify(heartbeat.report)
      } catch {
        // a cycle, a BigInt: refused below
      }
      if (report === undefined) {
        return Effect.fail(invalid("heartbeat", `heartbeat ${heartbeat.id}: its report is not JSON-serialisable`))
      }
      const json = `{"id":${JSON.stringify(heartbeat.id)},"expiresAt":${heartbeat.expiresAt},"report":${report}}`
      return Effect.flatMap(Clock.currentTimeMillis, (now) =>
        call(
          "heartbeat",
          () => inspect.errand_inspect_heartbeat(...heartbeatKeys, now, heartbeat.id, heartbeat.expiresAt, json)
        )).pipe(Effect.asVoid)
    },
    heartbeats: Effect.flatMap(
      Clock.currentTimeMillis,
      (now) =>
        Effect.map(
          call("heartbeats", () => inspect.errand_inspect_heartbeats(...heartbeatKeys, now)),
          (jsons) => jsons.flatMap(Inspect.readHeartbeat)
        )
    ),
    requeueDeadLetters: Effect.fnUntraced(function*(queue: string, selection?: Broker.DeadLetterSelection) {
      const ids = deadSelection(selection)
      if (ids !== undefined && ids.length === 0) return 0
      const now = yield* Clock.currentTimeMillis
      return yield* call(
        "requeueDeadLetters",
        () =>
          redis.errand_deadRequeue(
            ...keysOf(queue).all,
            now,
            deadLetterTtl,
            deadLetterMax,
            ids === undefined ? 1 : 0,
            ...(ids ?? [])
          )
      )
    }),
    purgeDeadLetters: (queue, selection) => {
      const ids = deadSelection(selection)
      if (ids !== undefined && ids.length === 0) return Effect.succeed(0)
      return call(
        "purgeDeadLetters",
        () => redis.errand_deadPurge(...keysOf(queue).all, ids === undefined ? 1 : 0, ...(ids ?? []))
      )
    },
    flush: (queue) =>
      Effect.suspend(() => {
        registeredAt.delete(queue)
        return Effect.asVoid(call("flush", () => redis.del(...keysOf(queue).all))).pipe(
          Effect.andThen(call("flush", () => client.srem(registryKey, queue)))
        )
      }).pipe(Effect.asVoid),
    queues: Effect.map(call("queues", () => client.smembers(registryKey)), (names) => names.sort()),
    claimSlot: (schedule, slot, message) => {
      const refused = Broker.refuseInvalid("redis", [message], "claimSlot")
      if (refused !== undefined) return Effect.fail(refused)
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const keys = keysOf(message.queue)
        // the slot claim is the message's deduplication: an idempotency key is not used here
        const args = enqueueArgs(keys, now, [message.key === undefined ? message : withoutKey(message)])
        if (typeof args === "string") return Effect.fail(invalid("claimSlot", args))
        // KEYS: the queue's, then its schedules hash; ARGV: schedule, slot, then the enqueue's ARGV
        args.splice(Keys.keyCount, 0, Keys.schedules(keys), schedule, slot)
        return Effect.map(call("claimSlot", () => redis.errand_claimSlot(...args)), (claimed) => claimed === 1)
      }).pipe(Effect.tap((claimed) => claimed ? register(message.queue) : Effect.void))
    },
    recordGroupMember: (group, member, succeeded, size, ttl) =>
      Effect.map(
        call("recordGroupMember", () =>
          groups.errand_group_record(
            Groups.key(prefix, group),
            member,
            succeeded ? "1" : "0",
            size,
            Math.max(1, Math.ceil(Duration.toMillis(ttl)))
          )),
        ([succeededCount, failedCount, recorded, completedBy, firstFailed]) => ({
          succeeded: succeededCount,
          failed: failedCount,
          recorded: recorded === 1,
          completedBy: completedBy === "" ? undefined : completedBy,
          firstFailed: firstFailed === "" ? undefined : firstFailed
        })
      ),
    cancel: (queue, ids) => {
      if (ids.length === 0) return Effect.succeed([])
      return Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => call("cancel", () => redis.errand_cancel(...keysOf(queue).all, now, sweepBatch, ...ids))
      )
    }
  })
  return { broker, results }
})

/** The broker and its results store as one context. */
const provideBoth = <E, R>(
  built: Effect.Effect<{ readonly broker: BrokerShape; readonly results: Results.Results["Service"] }, E, R>
) =>
  Layer.effectContext(
    Effect.map(built, ({ broker, results }) =>
      Context.make(Broker.Broker, broker).pipe(Context.add(Results.Results, results)))
  )

/**
 * The Redis broker as a Layer, swappable for the memory broker. Fails with a `RedisBrokerError` when the URL is
 * invalid, Redis cannot be reached within `connectTimeout`, or the Redis user lacks a permission the broker needs.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: RedisBrokerOptions): Layer.Layer<Broker.Broker | Results.Results, RedisBrokerError> =>
  provideBoth(makeWithResults(options))

/**
 * The Redis broker as a Layer whose URL is read from the `REDIS_URL` config (as a `Redacted` value).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  options: Omit<RedisBrokerOptions, "url"> = {}
): Layer.Layer<Broker.Broker | Results.Results, RedisBrokerError | Config.ConfigError> =>
  provideBoth(
    Effect.gen(function*() {
      const url = yield* Config.Redacted("REDIS_URL")
      return yield* makeWithResults({ ...options, url })
    })
  )
