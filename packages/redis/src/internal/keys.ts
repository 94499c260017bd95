/**
 * Every Redis key the broker uses, built in one place. The schema is documented in `packages/redis/README.md`.
 *
 * All keys of one queue share the hash tag `{<prefix>:<queue>}`, so they live in one Redis Cluster slot and every
 * script can declare all of them in `KEYS`.
 *
 * @internal
 */

/** The keys of one queue, in the order every script receives them as `KEYS[1..14]`. */
export interface QueueKeys {
  /** The hash tag shared by the queue's keys: `{<prefix>:<queue>}`. */
  readonly tag: string
  /** All keys, in `KEYS` order. */
  readonly all: ReadonlyArray<string>
  readonly ready: string
  readonly readyHigh: string
  readonly readyLow: string
  readonly sequence: string
  readonly timers: string
  readonly inFlight: string
  readonly dead: string
  readonly deadBodies: string
  readonly wake: string
  /** Limits of waiting and in-flight messages: id → limits JSON (only messages that have limits). */
  readonly limits: string
  /** Limit state: `r:<key>` → JSON array of the take times in the rate window; `c:<key>` → in-flight count. */
  readonly limitState: string
  /** Messages waiting for a concurrency slot: a lexicographic zset, member = key + NUL + 12 hex seq + element. */
  readonly parked: string
  /** Idempotency keys: key → id of the message holding it. */
  readonly keyHolders: string
  /** Idempotency keys whose holder finished: key → end of its window (epoch ms by `Clock`). */
  readonly keyWindows: string
}

/** The suffix of each key, in `KEYS` order (`KEYS[1]` = `:r`, …). */
export const suffixes = [
  ":r",
  ":hi",
  ":lo",
  ":s",
  ":t",
  ":f",
  ":d",
  ":dh",
  ":w",
  ":lim",
  ":ls",
  ":pk",
  ":k",
  ":kx"
] as const

/** Number of keys every script declares. */
export const keyCount = suffixes.length

/** Builds the keys of `queue` under `prefix`. */
export const make = (prefix: string, queue: string): QueueKeys => {
  const tag = `{${prefix}:${queue}}`
  const all = suffixes.map((suffix) => tag + suffix)
  return {
    tag,
    all,
    ready: all[0]!,
    readyHigh: all[1]!,
    readyLow: all[2]!,
    sequence: all[3]!,
    timers: all[4]!,
    inFlight: all[5]!,
    dead: all[6]!,
    deadBodies: all[7]!,
    wake: all[8]!,
    limits: all[9]!,
    limitState: all[10]!,
    parked: all[11]!,
    keyHolders: all[12]!,
    keyWindows: all[13]!
  }
}

/**
 * The registry of queue names under `prefix`: a set, updated by enqueue (at most once a minute per queue and broker)
 * and flush. It is a key of its own (hash tag `{<prefix>:}`: no queue name is empty, so no queue shares it, and the
 * prefix's ACL key pattern `~{<prefix>:*` covers it), outside every queue's slot, so on Redis Cluster it cannot be
 * updated inside a queue's script: the broker adds a queue with `SADD` after its enqueue script, best effort.
 */
export const registry = (prefix: string): string => `{${prefix}:}:queues`

/**
 * The hash of a queue's schedules, in the queue's hash tag: schedule name → last claimed slot (epoch ms). Not one of
 * the keys every script declares: only the `claimSlot` script uses it (as its last key), and `flush` keeps it.
 */
export const schedules = (keys: QueueKeys): string => `${keys.tag}:cron`

/** A cache of `make` per queue, so hot paths do not rebuild key strings. */
export const cache = (prefix: string): (queue: string) => QueueKeys => {
  const byQueue = new Map<string, QueueKeys>()
  return (queue) => {
    let keys = byQueue.get(queue)
    if (keys === undefined) {
      keys = make(prefix, queue)
      byQueue.set(queue, keys)
    }
    return keys
  }
}

/** CRC16 (XMODEM) lookup table, as Redis Cluster uses for key slots. */
const crcTable = (() => {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[i] = crc
  }
  return table
})()

/**
 * The Redis Cluster slot (0–16383) of a key: CRC16 of its hash tag (the part between the first `{` and the next `}`,
 * when non-empty) or of the whole key, modulo 16384. All keys of a queue share one slot.
 */
export const slot = (key: string): number => {
  const open = key.indexOf("{")
  let hashed = key
  if (open !== -1) {
    const close = key.indexOf("}", open + 1)
    if (close > open + 1) hashed = key.slice(open + 1, close)
  }
  let crc = 0
  for (const byte of Buffer.from(hashed, "utf8")) crc = ((crc << 8) & 0xffff) ^ crcTable[((crc >> 8) ^ byte) & 0xff]!
  return crc & 0x3fff
}
