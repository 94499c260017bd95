/**
 * ioredis connections: the standalone and Cluster clients, connecting with a bounded
 * timeout, and the pools of dedicated connections that blocking takes wait on (per node, on a cluster).
 *
 * @internal
 */
import { Clock, Context, Effect } from "effect"
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis"
import { slot } from "./keys.ts"

/** Why connecting failed. */
export type FailureReason = "ConnectFailed" | "ConnectTimeout"

/** A connection failure, with a message that never contains the password. */
export interface ConnectFailure {
  readonly reason: FailureReason
  readonly message: string
  readonly cause?: Error | undefined
}

/** Keeps only the name, message and code of an ioredis error: its `command` may carry the AUTH password. */
export const sanitize = (cause: unknown): Error => {
  if (!(cause instanceof Error)) return new Error(String(cause))
  const clean = new Error(cause.message)
  clean.name = cause.name
  const code = (cause as { readonly code?: unknown }).code
  if (typeof code === "string") Object.assign(clean, { code })
  return clean
}

/** Whether ioredis refused a command before writing it (not connected). */
const notSent = (error: Error): boolean =>
  error.message.startsWith("Stream isn't writeable") || error.message.startsWith("Cluster isn't ready")

/**
 * Says what an ioredis failure means for the caller: ioredis's own wording names its options, not the situation.
 */
export const explain = (error: Error): string => {
  if (error.name === "MaxRetriesPerRequestError") {
    return "the connection to Redis was lost before the reply (the command may or may not have been applied)"
  }
  if (notSent(error)) return "not connected to Redis (reconnecting; the command was not sent)"
  if (error.message === "Connection is closed.") {
    return "the connection to Redis closed before the reply (the command may or may not have been applied)"
  }
  if (error.message === "Command timed out") {
    return "Redis did not answer within commandTimeout (the command may or may not have been applied)"
  }
  return error.message
}

/**
 * Whether a failed command may have been applied: `"no"` when it was refused before it was written (not connected)
 * or Redis answered it with an error (a reply error, a redirection the client gave up following), `"unknown"` when
 * the connection closed or no reply came in time after it may have been written.
 */
export const applied = (error: Error): "no" | "unknown" => {
  if (notSent(error)) return "no"
  if (error.name === "ReplyError" || error.message.startsWith("Too many Cluster redirections")) return "no"
  return "unknown"
}

/**
 * Whether a command failed because the cluster client gave up following redirections (`TRYAGAIN`, `ASK`, `MOVED`)
 * while a slot migrates: Redis did not run it, so it may be sent again.
 */
export const isRedirectionLimit = (error: unknown): boolean =>
  error instanceof Error && error.message.startsWith("Too many Cluster redirections") &&
  /\b(TRYAGAIN|ASK|MOVED)\b/.test(error.message)

/** Settings of the command connection. */
export interface ClientSettings {
  readonly connectTimeout: number
  readonly commandTimeout: number
  readonly extra?: RedisOptions | undefined
}

/**
 * Creates the command connection (not connected yet). Commands fail fast while disconnected (no offline queue, no
 * resend after a reconnect, so a script never runs twice), and ioredis reconnects in the background.
 */
export const makeClient = (url: string, settings: ClientSettings): Redis => {
  const options: Omit<RedisOptions, "replyMapping"> = {
    ...settings.extra,
    lazyConnect: true,
    connectTimeout: settings.connectTimeout,
    commandTimeout: settings.commandTimeout,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000)
  }
  const client = new Redis(url, options)
  // Without a listener ioredis prints "Unhandled error event"; failures reach callers through their commands.
  client.on("error", () => {})
  return client
}

type NodeOptions = Omit<NonNullable<ClusterOptions["redisOptions"]>, "replyMapping">

const clusterOwned = new Set([
  "host",
  "port",
  "path",
  "sentinels",
  "readOnly",
  "retryStrategy",
  "enableOfflineQueue",
  "lazyConnect",
  "replyMapping",
  "himportFieldsets"
])

/**
 * Creates a Redis Cluster client seeded by the nodes of `urls` (not connected yet; any of them may be down): the other
 * nodes are discovered from the cluster. The first URL's credentials and TLS apply to every node. As for a standalone client, commands fail fast while
 * the cluster is unreachable and a command whose connection closed is never sent again (a script never runs twice);
 * MOVED, ASK and TRYAGAIN replies (the command did not run) are followed.
 */
export const makeCluster = (urls: ReadonlyArray<string>, settings: ClientSettings): Cluster => {
  const parsed = new URL(urls[0]!)
  const extra = settings.extra
  // The node options ioredis takes from the cluster's own settings, or that name one server, are left out.
  const nodeExtra = Object.fromEntries(
    Object.entries(extra ?? {}).filter(([name]) => !clusterOwned.has(name))
  ) as NodeOptions
  const nodeOptions: NodeOptions = {
    ...nodeExtra,
    ...(parsed.username === "" ? {} : { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password === "" ? {} : { password: decodeURIComponent(parsed.password) }),
    ...(parsed.protocol === "rediss:" ? { tls: extra?.tls ?? {} } : {}),
    connectTimeout: settings.connectTimeout,
    commandTimeout: settings.commandTimeout,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false
  }
  const seeds = urls.map((url) => {
    const seed = new URL(url)
    return { host: seed.hostname.replace(/^\[|\]$/g, ""), port: Number(seed.port || 6379) }
  })
  const cluster = new Cluster(seeds, {
    lazyConnect: true,
    enableOfflineQueue: false,
    retryDelayOnFailover: 0,
    slotsRefreshTimeout: settings.connectTimeout,
    clusterRetryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    redisOptions: nodeOptions
  })
  cluster.on("error", () => {})
  cluster.on("node error", () => {})
  return cluster
}

/** The last node's error of a Cluster client that could reach no node (" (…)"), or "". */
const lastNodeError = (error: Error): string => {
  const last = (error as { readonly lastNodeError?: unknown }).lastNodeError
  return last instanceof Error ? ` (${sanitize(last).message})` : ""
}

/** Connects and waits until the client is ready, failing on the first error or after `timeoutMs`. */
export const connect = (
  client: Redis | Cluster,
  redacted: string,
  timeoutMs: number
): Effect.Effect<void, ConnectFailure> =>
  Effect.callback<void, ConnectFailure>((resume) => {
    let timer: ReturnType<typeof setTimeout> | undefined = undefined
    const cleanup = () => {
      client.off("ready", onReady)
      client.off("error", onError)
      if (timer !== undefined) clearTimeout(timer)
    }
    const fail = (failure: ConnectFailure) => {
      cleanup()
      client.disconnect()
      resume(Effect.fail(failure))
    }
    const onReady = () => {
      if (!(client instanceof Cluster)) {
        cleanup()
        return resume(Effect.void)
      }
      // A Cluster client is ready once it knows the slots, but it opens its connection to each node on that node's
      // first command and, without an offline queue, rejects the commands that reach the node while that connection
      // opens ("Connection is closed."): concurrent first takes on a queue failed so. Every master is connected now.
      Promise.all(client.nodes("master").map(nodeReady)).then(() => {
        cleanup()
        resume(Effect.void)
      }, onError)
    }
    const onError = (error: Error) =>
      fail({
        reason: "ConnectFailed",
        message: `Cannot connect to Redis at ${redacted}: ${error.message}${lastNodeError(error)}`,
        cause: sanitize(error)
      })
    client.once("ready", onReady)
    client.once("error", onError)
    // A timer of its own (not Clock): connecting is real I/O, and a TestClock must not make it hang.
    timer = setTimeout(
      () =>
        fail({
          reason: "ConnectTimeout",
          message: `Cannot connect to Redis at ${redacted}: no answer within ${timeoutMs} ms`
        }),
      timeoutMs
    )
    client.connect().catch(() => {})
    return Effect.sync(() => {
      cleanup()
      client.disconnect()
    })
  })

/** Connects a Cluster client's node connection (lazy until then), resolving once it is ready. */
const nodeReady = (node: Redis): Promise<void> =>
  node.status === "ready" ? Promise.resolve() : node.status === "end"
    ? Promise.reject(new Error("Connection is closed."))
    : new Promise<void>((resolve, reject) => {
      const off = () => {
        node.off("ready", onReady)
        node.off("error", onError)
        node.off("end", onEnd)
      }
      const onReady = () => {
        off()
        resolve()
      }
      const onError = (error: Error) => {
        off()
        reject(error)
      }
      const onEnd = () => onError(new Error("Connection is closed."))
      node.once("ready", onReady)
      node.once("error", onError)
      node.once("end", onEnd)
      if (node.status === "wait") node.connect().catch(() => {})
    })

/** Closes a client: QUIT (bounded), then disconnect. */
export const close = (client: Redis | Cluster): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (client.status === "end") return resume(Effect.void)
    const timer = setTimeout(() => {
      client.disconnect()
      resume(Effect.void)
    }, 1000)
    const done = () => {
      clearTimeout(timer)
      client.disconnect()
      resume(Effect.void)
    }
    if (client.status === "ready") client.quit().then(done, done)
    else done()
  })

/** How long after its timeout a pipelined wait is ended by Clock, when Redis has not ended it. */
const clockGrace = 250

/** The clock a fiber has when none is provided: real time, the same as Redis's. */
const liveClock = Context.get(Context.empty(), Clock.Clock)

interface Blocker {
  readonly conn: Redis
  readonly id: number
  healthy: boolean
}

/** Dedicated connections for blocking waits: one per concurrently waiting take, reused afterwards. */
export interface BlockingPool {
  /**
   * Waits up to `ms` (by Clock and by Redis) for the wake-up marker at `key`. Succeeds with `true` when woken by a
   * marker. Interruptible: an interrupted wait is unblocked with `CLIENT UNBLOCK` and its connection reused.
   */
  readonly wait: (key: string, ms: number) => Effect.Effect<boolean, Error>
  /**
   * Waits like `wait`, with `then` sent on the same connection right behind the wait (pipelined): Redis runs it the
   * moment the wait ends (woken, or timed out by Redis), with no round trip in between. Succeeds with its reply, or
   * with `undefined` when Clock ended the wait first (a `TestClock`; Clock ends it `clockGrace` ms after `ms`). When
   * interrupted or ended by Clock, the reply of `then` (if it ran) goes to `orphan`, and a popped marker is put back.
   * `before`, when given, is sent on the same connection just ahead of the wait, in the same write: the caller keeps
   * its reply (which arrives before the wait's).
   */
  readonly waitThen: <A>(
    key: string,
    ms: number,
    then: (conn: Redis) => Promise<A>,
    orphan: (reply: A) => void,
    before?: ((conn: Redis) => void) | undefined
  ) => Effect.Effect<A | undefined, Error>
  /** Disconnects every connection of the pool. */
  readonly close: Effect.Effect<void>
}

/** Where a pool's connections go: one Redis server (a standalone server, or one node of a cluster). */
interface PoolTarget {
  /** Creates a dedicated connection to the server (not connected); may throw when the server is gone. */
  readonly duplicate: (options: RedisOptions) => Redis
  /** Sends `CLIENT UNBLOCK id` to the server. */
  readonly unblock: (id: number) => Promise<unknown>
  /** Puts a wake-up marker back at `key`. */
  readonly mark: (key: string) => Promise<unknown>
}

/** Makes the pool; blocking connections are duplicates of `client` that never reconnect on their own. */
export const makeBlockingPool = (
  client: Redis,
  redacted: string,
  connectTimeout: number,
  setup: (conn: Redis) => void = () => {}
): BlockingPool =>
  makePool(
    {
      duplicate: (options) => client.duplicate(options),
      unblock: (id) => client.client("UNBLOCK", id),
      mark: (key) => client.zadd(key, 0, "1")
    },
    redacted,
    connectTimeout,
    setup
  )

/**
 * Makes the blocking pool of a Redis Cluster: a pool per master node, and each wait on a connection to the node that
 * serves its key's slot (a standalone connection, so the take is pipelined behind the wait as on a single server). A
 * wait refused with MOVED (the slot moved) fails, and refreshes the slot map for the next one.
 */
export const makeClusterBlockingPool = (
  cluster: Cluster,
  redacted: string,
  connectTimeout: number,
  setup: (conn: Redis) => void = () => {}
): BlockingPool => {
  const pools = new Map<string, BlockingPool>()
  let closed = false
  const nodeOf = (nodeKey: string): Redis => {
    const node = cluster.nodes("master").find((n) => `${n.options.host}:${n.options.port}` === nodeKey)
    if (node === undefined) throw new Error(`Redis Cluster node ${nodeKey} is not a master any more`)
    return node
  }
  const poolOf = (key: string): Effect.Effect<BlockingPool, Error> =>
    Effect.suspend(() => {
      const nodeKey = cluster.slots[slot(key)]?.[0]
      if (closed) return Effect.fail(new Error("The broker is closed"))
      if (nodeKey === undefined) {
        cluster.refreshSlotsCache()
        return Effect.fail(new Error(`No Redis Cluster node serves the slot of ${key}`))
      }
      let pool = pools.get(nodeKey)
      if (pool === undefined) {
        pool = makePool(
          {
            duplicate: (options) => nodeOf(nodeKey).duplicate(options),
            unblock: (id) => Promise.resolve().then(() => nodeOf(nodeKey).client("UNBLOCK", id)),
            mark: (key) => cluster.zadd(key, 0, "1")
          },
          `${redacted} (node ${nodeKey})`,
          connectTimeout,
          setup
        )
        pools.set(nodeKey, pool)
      }
      return Effect.succeed(pool)
    })
  const onMoved = (error: Error) =>
    Effect.sync(() => {
      if (error.message.startsWith("MOVED") || error.message.startsWith("ASK")) cluster.refreshSlotsCache()
    })
  return {
    wait: (key, ms) => Effect.flatMap(poolOf(key), (pool) => pool.wait(key, ms)).pipe(Effect.tapError(onMoved)),
    waitThen: (key, ms, then, orphan, before) =>
      Effect.flatMap(poolOf(key), (pool) => pool.waitThen(key, ms, then, orphan, before)).pipe(
        Effect.tapError(onMoved)
      ),
    close: Effect.suspend(() => {
      closed = true
      const all = Array.from(pools.values())
      pools.clear()
      return Effect.forEach(all, (pool) => pool.close, { discard: true })
    })
  }
}

const makePool = (
  target: PoolTarget,
  redacted: string,
  connectTimeout: number,
  setup: (conn: Redis) => void
): BlockingPool => {
  const idle: Array<Blocker> = []
  const all = new Set<Blocker>()
  let closed = false

  const create = Effect.gen(function*() {
    const conn = yield* Effect.try({
      try: () =>
        target.duplicate({
          lazyConnect: true,
          commandTimeout: undefined,
          retryStrategy: () => null,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          autoResendUnfulfilledCommands: false
        }),
      catch: sanitize
    })
    conn.on("error", () => {})
    setup(conn)
    yield* connect(conn, redacted, connectTimeout).pipe(Effect.mapError((failure) => new Error(failure.message)))
    const id = yield* Effect.tryPromise({ try: () => conn.client("ID"), catch: sanitize }).pipe(
      Effect.tapError(() => Effect.sync(() => conn.disconnect()))
    )
    const blocker: Blocker = { conn, id, healthy: true }
    all.add(blocker)
    return blocker
  })

  const acquire: Effect.Effect<Blocker, Error> = Effect.suspend(() => {
    while (idle.length > 0) {
      const blocker = idle.pop()!
      if (blocker.healthy && blocker.conn.status === "ready") return Effect.succeed(blocker)
      drop(blocker)
    }
    return create
  })

  const drop = (blocker: Blocker) => {
    blocker.healthy = false
    all.delete(blocker)
    blocker.conn.disconnect()
  }

  const release = (blocker: Blocker) =>
    Effect.sync(() => {
      if (!closed && blocker.healthy && blocker.conn.status === "ready") idle.push(blocker)
      else drop(blocker)
    })

  /**
   * BZPOPMIN, then (when given) `then` pipelined behind it; resumes with the marker flag or `then`'s reply. With
   * `guard`, a plain timer ends the wait after `guard.ms` like an interruption would, and resumes with `guard.value`:
   * on the live clock this bounds a wait whose reply never comes, without a fiber race per wait.
   */
  const pop = <A, G = never>(
    blocker: Blocker,
    key: string,
    ms: number,
    then?: {
      readonly run: (conn: Redis) => Promise<A>
      readonly orphan: (reply: A) => void
      readonly before?: ((conn: Redis) => void) | undefined
    },
    guard?: { readonly ms: number; readonly value: G }
  ) =>
    Effect.callback<boolean | A | G, Error>((resume) => {
      let settled = false
      let interrupted = false
      let marker = false
      let reply: { readonly value: A } | undefined = undefined
      let guardTimer: ReturnType<typeof setTimeout> | undefined = undefined
      const seconds = Number.isFinite(ms) ? Math.max(ms, 1) / 1000 : 0
      // Both commands leave in one write: the socket is corked while ioredis writes them. Each write is a system call
      // that also wakes Redis, and at 1,000 jobs/s socket writes were the largest part of a worker's CPU time.
      const stream = then === undefined ? undefined : blocker.conn.stream
      stream?.cork()
      let popped: Promise<void>
      let followed: Promise<A> | undefined
      try {
        then?.before?.(blocker.conn)
        popped = blocker.conn.bzpopmin(key, seconds).then((answer) => {
          marker = answer !== null && answer.length > 0
        })
        followed = then?.run(blocker.conn)
      } finally {
        stream?.uncork()
      }
      // Put the marker back for another waiter, and hand a reply nobody will read to `orphan`.
      const abandon = () => {
        if (reply !== undefined) then!.orphan(reply.value)
        if (marker) target.mark(key).catch(() => {})
      }
      const pending = (followed === undefined ? popped : popped.then(
        () => followed,
        (error: unknown) => {
          followed.catch(() => {})
          throw error
        }
      )).then(
        (value) => {
          settled = true
          if (guardTimer !== undefined) clearTimeout(guardTimer)
          if (followed !== undefined) reply = { value: value as A }
          if (interrupted) abandon()
          else resume(Effect.succeed(followed === undefined ? marker : value as A))
        },
        (error: unknown) => {
          settled = true
          if (guardTimer !== undefined) clearTimeout(guardTimer)
          blocker.healthy = false
          if (!interrupted) resume(Effect.fail(sanitize(error)))
        }
      )
      /**
       * Ends the wait (interrupted, or the guard fired), once: the promise settles when the connection is free again
       * or dropped.
       */
      let stopped: Promise<void> | undefined
      const stop = (): Promise<void> =>
        stopped ??= new Promise<void>((done) => {
          interrupted = true
          if (guardTimer !== undefined) clearTimeout(guardTimer)
          if (settled) {
            abandon()
            return done()
          }
          // Unblocked, BZPOPMIN answers at once; if it was not blocked (its reply is on the way, or it has not
          // reached Redis yet), give the reply a moment, then close the connection (which ends the command for sure).
          let giveUp: ReturnType<typeof setTimeout> | undefined = setTimeout(() => drop(blocker), 1000)
          target.unblock(blocker.id).then(
            (n) => {
              if (n === 1 || settled) return
              blocker.healthy = false
              clearTimeout(giveUp)
              giveUp = setTimeout(() => drop(blocker), 20)
            },
            () => drop(blocker)
          )
          void pending.then(() => {
            clearTimeout(giveUp)
            done()
          })
        })
      if (guard !== undefined) {
        guardTimer = setTimeout(() => {
          guardTimer = undefined
          if (!settled && !interrupted) void stop().then(() => resume(Effect.succeed(guard.value)))
        }, guard.ms)
      }
      return Effect.callback<void>((done) => {
        void stop().then(() => done(Effect.void))
      })
    })

  /**
   * Ends `popped` by Clock after `ms` (with `value`): a plain timer on the live clock (Redis's own timeout normally
   * ends the wait first), a race with `Clock.sleep` on any other clock (a `TestClock` drives it).
   */
  const byClock = <A, G>(
    ms: number,
    value: G,
    timed: (guard: { readonly ms: number; readonly value: G }) => Effect.Effect<A | G, Error>,
    untimed: Effect.Effect<A, Error>
  ): Effect.Effect<A | G, Error> =>
    Effect.withFiber((fiber) =>
      fiber.getRef(Clock.Clock) === liveClock
        ? timed({ ms, value })
        : Effect.raceFirst(untimed, Effect.as(Effect.sleep(ms), value))
    )

  const wait = (key: string, ms: number) =>
    Effect.acquireUseRelease(
      acquire,
      (blocker) =>
        Number.isFinite(ms)
          ? byClock(ms, false, (guard) => pop(blocker, key, ms, undefined, guard), pop(blocker, key, ms))
          : pop(blocker, key, ms),
      release
    ) as Effect.Effect<boolean, Error>

  const waitThen = <A>(
    key: string,
    ms: number,
    run: (conn: Redis) => Promise<A>,
    orphan: (reply: A) => void,
    before?: ((conn: Redis) => void) | undefined
  ): Effect.Effect<A | undefined, Error> =>
    Effect.acquireUseRelease(
      acquire,
      (blocker) => {
        // By Clock too (a TestClock ends the wait), a little after Redis's own timeout so that on a live clock Redis
        // ends it and the pipelined command's reply is used; when Clock ends it, the reply is orphaned.
        const then = { run, orphan, before }
        if (!Number.isFinite(ms)) return pop(blocker, key, ms, then) as Effect.Effect<A, Error>
        return byClock(
          ms + clockGrace,
          undefined,
          (guard) => pop(blocker, key, ms, then, guard) as Effect.Effect<A | undefined, Error>,
          pop(blocker, key, ms, then) as Effect.Effect<A, Error>
        )
      },
      release
    )

  const closeAll = Effect.sync(() => {
    closed = true
    idle.length = 0
    for (const blocker of all) blocker.conn.disconnect()
    all.clear()
  })

  return { wait, waitThen, close: closeAll }
}
