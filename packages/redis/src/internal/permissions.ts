/**
 * The startup check of the Redis user's permissions (ACL): every command the broker sends, and every command its
 * scripts call, on the keys of its prefix. Without it, a user lacking one (say `client|unblock`, outside `-@dangerous`
 * users) starts fine and then fails every blocking take, which a worker sees as Redis flapping between unavailable and
 * recovered.
 *
 * `ACL DRYRUN` would answer without running anything, but it is an admin command a least-privileged user cannot run,
 * and Redis 6.2 lacks it. So the check runs the commands themselves, harmlessly, on a key of the prefix's own hash tag
 * (`{<prefix>:errand-permission-check}:…`), and reads the `NOPERM` replies: the connection-level commands directly,
 * the scripts' commands inside one probe script (`redis.pcall`, which reports a denied command instead of aborting),
 * leaving no key behind. It works the same on Redis 6.2 and 7.
 *
 * @internal
 */
import { Effect } from "effect"
import type { Cluster, Redis } from "ioredis"

/** The commands the broker sends itself. */
export const connectionCommands = ["evalsha", "eval", "client|id", "client|unblock", "bzpopmin"] as const

/** The commands the scripts call (see `scripts.ts`). */
export const scriptCommands = [
  "rpush",
  "llen",
  "lpop",
  "zadd",
  "zcard",
  "zcount",
  "zrange",
  "zrangebyscore",
  "zpopmin",
  "zrem",
  "zremrangebyrank",
  "hset",
  "hmget",
  "hlen",
  "hdel",
  "incr",
  "incrby",
  "exists",
  "hget",
  "hincrby",
  "time",
  "zrangebylex",
  "pexpire",
  "del",
  "zscore",
  "hexists",
  "lrange",
  "lrem"
] as const

/**
 * Runs each script command once on the probe keys (KEYS[1] list, KEYS[2] sorted set, KEYS[3] hash, KEYS[4] string),
 * with `redis.pcall`, and returns `{ command, error }` pairs of the failures, flattened; then deletes the keys.
 */
const probeScript = String.raw`
local L, Z, H, S = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local probes = {
  { "rpush", L, "x" }, { "llen", L }, { "lpop", L },
  { "zadd", Z, 0, "x" }, { "zcard", Z }, { "zcount", Z, "-inf", "+inf" }, { "zrange", Z, 0, 0 },
  { "zrangebyscore", Z, "-inf", "+inf" }, { "zpopmin", Z, 1 }, { "zrem", Z, "x" }, { "zremrangebyrank", Z, 0, -1 },
  { "hset", H, "f", "v" }, { "hmget", H, "f" }, { "hlen", H }, { "hdel", H, "f" },
  { "incr", S }, { "incrby", S, 1 }, { "exists", S }, { "hget", H, "f" }, { "hincrby", H, "c", 1 }, { "time" },
  { "zrangebylex", Z, "-", "+" }, { "pexpire", S, 1000 }, { "del", S },
  { "zscore", Z, "x" }, { "hexists", H, "f" }, { "lrange", L, 0, 0 }, { "lrem", L, 1, "x" }
}
local out = {}
for i = 1, #probes do
  local reply = redis.pcall(unpack(probes[i]))
  if type(reply) == "table" and reply.err then
    out[#out + 1] = probes[i][1]
    out[#out + 1] = reply.err
  end
end
redis.pcall("DEL", L, Z, H, S)
return out
`

/** What the user may not do. */
export interface Missing {
  /** Denied commands (`client|unblock`, `rpush`, …), in the order of `connectionCommands` then `scriptCommands`. */
  readonly commands: ReadonlyArray<string>
  /** Whether the keys of the prefix (`{<prefix>:*`) were denied. */
  readonly keys: boolean
  /** Whether the scripts' commands could not be checked (EVAL itself denied). */
  readonly unchecked: boolean
}

const isDenied = (message: string): boolean =>
  message.startsWith("NOPERM") || message.includes("can't run") || message.includes("can't access") ||
  message.includes("no permissions")

const isKeyDenial = (message: string): boolean => message.includes("key")

/** The reply of a command, or its error message; never fails. */
const attempt = (f: () => Promise<unknown>): Effect.Effect<{ readonly reply: unknown } | { readonly error: string }> =>
  Effect.promise(() =>
    f().then(
      (reply) => ({ reply }),
      (error: unknown) => ({ error: error instanceof Error ? error.message : String(error) })
    )
  )

/**
 * Checks the permissions of the connected user on `prefix`. Errors other than permission denials (Redis busy, out of
 * memory) are not held against the user: the check only ever reports what Redis refused with `NOPERM`.
 */
export const check = (client: Redis | Cluster, prefix: string): Effect.Effect<Missing> =>
  Effect.gen(function*() {
    const tag = `{${prefix}:errand-permission-check}`
    const keys = [`${tag}:l`, `${tag}:z`, `${tag}:h`, `${tag}:s`]
    const commands: Array<string> = []
    let keyDenied = false
    const note = (command: string, outcome: { readonly reply: unknown } | { readonly error: string }) => {
      if (!("error" in outcome) || !isDenied(outcome.error)) return
      if (isKeyDenial(outcome.error)) keyDenied = true
      else commands.push(command)
    }
    // All sent at once (ioredis pipelines them: one round trip at startup), the blocking one last.
    const [evalsha, probed, clientId, clientUnblock, bzpopmin] = yield* Effect.all([
      // EVALSHA of a script Redis does not know: NOSCRIPT when allowed, NOPERM when not
      attempt(() => client.call("EVALSHA", "0".repeat(40), keys.length, ...keys)),
      attempt(() => client.call("EVAL", probeScript, keys.length, ...keys)),
      attempt(() => client.call("CLIENT", "ID")),
      attempt(() => client.call("CLIENT", "UNBLOCK", 0)),
      // A blocking command cannot run in a script: a 1 ms wait on an empty key
      attempt(() => client.call("BZPOPMIN", keys[1]!, "0.001"))
    ], { concurrency: "unbounded" })
    note("evalsha", evalsha)
    note("eval", probed)
    note("client|id", clientId)
    note("client|unblock", clientUnblock)
    note("bzpopmin", bzpopmin)
    const unchecked = "error" in probed
    if (!unchecked && Array.isArray(probed.reply)) {
      const failures = probed.reply as Array<string>
      const denied = new Set<string>()
      for (let i = 0; i + 1 < failures.length; i += 2) {
        const [command, error] = [failures[i]!, failures[i + 1]!]
        if (!isDenied(error)) continue
        if (isKeyDenial(error)) keyDenied = true
        else denied.add(command)
      }
      for (const command of scriptCommands) if (denied.has(command)) commands.push(command)
    }
    return { commands, keys: keyDenied, unchecked }
  })

/** The message of a failed check, naming what to grant. */
export const explain = (missing: Missing, prefix: string): string => {
  const parts: Array<string> = []
  if (missing.commands.length > 0) {
    parts.push(
      `cannot run ${missing.commands.join(", ")} (grant them with ACL SETUSER <user> ${
        missing.commands.map((command) => `+${command}`).join(" ")
      })`
    )
  }
  if (missing.keys) parts.push(`cannot access the keys of the prefix (grant ~{${prefix}:*)`)
  if (missing.unchecked) parts.push("the commands its scripts call could not be checked (EVAL was refused)")
  return `The Redis user lacks permissions the broker needs: it ${parts.join("; ")}. The broker needs ${
    [...connectionCommands, ...scriptCommands].join(", ")
  } on the keys ~{${prefix}:*`
}
