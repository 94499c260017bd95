/**
 * Scripts for admin tools (the dashboard), apart from the broker's hot-path scripts in `scripts.ts`: one dead letter by
 * id, and process heartbeats (a page of dead letters is `deadList` in `scripts.ts`, with an offset). None of them runs
 * per message.
 *
 * Keys: the dead-letter scripts take the queue's `:d` (sorted set id → dead-at in µs) and `:dh` (hash id → element),
 * both in the queue's hash tag. Heartbeats live in two keys of the prefix's own hash tag `{<prefix>:}` (beside the queue
 * registry, covered by the prefix's ACL key pattern): `{<prefix>:}:hb` (hash id → JSON `{expiresAt, report}`) and
 * `{<prefix>:}:hbx` (sorted set id → expiresAt, epoch ms by `Clock`). Every heartbeat call first drops the expired
 * ones, so the keys hold live processes only. The scripts use only commands of `permissions.ts`.
 *
 * @internal
 */
import type { Broker } from "@errand/core"
import type { Cluster, Redis } from "ioredis"
import * as Codec from "./codec.ts"

/** KEYS: D, DH. ARGV: deadAfter (µs), id. Returns { score, element, history JSON or "" } or {}. */
const DEAD_ONE = String.raw`
local score = redis.call("ZSCORE", KEYS[1], ARGV[2])
if not score or tonumber(score) <= tonumber(ARGV[1]) then return {} end
local r = redis.call("HMGET", KEYS[2], ARGV[2], "h:" .. ARGV[2])
if not r[1] then return {} end
return { score, r[1], r[2] or "" }`

/** Drops the expired heartbeats. KEYS: HB, HBX. */
const pruneBeats = String.raw`
local HB, HBX = KEYS[1], KEYS[2]
local function prune(now)
  local old = redis.call("ZRANGEBYSCORE", HBX, "-inf", now, "LIMIT", 0, 1000)
  if #old > 0 then
    redis.call("HDEL", HB, unpack(old))
    redis.call("ZREM", HBX, unpack(old))
  end
end
`

/** KEYS: HB, HBX. ARGV: now, id, expiresAt, JSON. */
const HEARTBEAT = pruneBeats + String.raw`
prune(ARGV[1])
redis.call("HSET", HB, ARGV[2], ARGV[4])
redis.call("ZADD", HBX, ARGV[3], ARGV[2])
return 1`

/** KEYS: HB, HBX. ARGV: now. Returns the live heartbeats' JSON, by id. */
const HEARTBEATS = pruneBeats + String.raw`
prune(ARGV[1])
local ids = redis.call("ZRANGEBYSCORE", HBX, "(" .. ARGV[1], "+inf", "LIMIT", 0, 10000)
if #ids == 0 then return {} end
table.sort(ids)
local out = {}
for i = 1, #ids, 1000 do
  local r = redis.call("HMGET", HB, unpack(ids, i, math.min(i + 999, #ids)))
  for k = 1, #r do if r[k] then out[#out + 1] = r[k] end end
end
return out`

/** @internal */
export interface InspectClient {
  readonly errand_inspect_deadOne: (
    dead: string,
    deadBodies: string,
    deadAfter: string,
    id: string
  ) => Promise<[] | [string, string, string]>
  readonly errand_inspect_heartbeat: (
    beats: string,
    beatExpiries: string,
    now: number,
    id: string,
    expiresAt: number,
    json: string
  ) => Promise<number>
  readonly errand_inspect_heartbeats: (beats: string, beatExpiries: string, now: number) => Promise<Array<string>>
}

/** Defines the scripts on a client. @internal */
export const define = <C extends Redis | Cluster>(client: C): C & InspectClient => {
  client.defineCommand("errand_inspect_deadOne", { lua: DEAD_ONE, numberOfKeys: 2 })
  client.defineCommand("errand_inspect_heartbeat", { lua: HEARTBEAT, numberOfKeys: 2 })
  client.defineCommand("errand_inspect_heartbeats", { lua: HEARTBEATS, numberOfKeys: 2 })
  return client as C & InspectClient
}

/** The heartbeat keys of a prefix: the hash of reports and the sorted set of expiries. @internal */
export const heartbeatKeys = (prefix: string): readonly [string, string] => [`{${prefix}:}:hb`, `{${prefix}:}:hbx`]

/** The dead-at score (µs) a live dead letter's is above at `now`, with time-to-live `ttl` (ms), as `stats` counts. */
export const deadAfter = (now: number, ttl: number): string => String(Math.round((now - ttl + 1) * 1000))

/** A dead letter from its id, dead-at score (µs), element and attempt history JSON ("" when none). @internal */
export const toDeadLetter = (
  queue: string,
  id: string,
  score: string,
  element: string,
  history: string
): Broker.DeadLetter => {
  const decoded = Codec.decode(element, id, queue)
  return {
    id,
    queue,
    body: decoded.body,
    attempts: decoded.attempts,
    reason: decoded.lastError ?? { tag: "Unknown", message: "" },
    deadAt: Math.floor(Number(score) / 1000),
    history: readHistory(history)
  }
}

const isAttemptRecord = (value: unknown): value is Broker.AttemptRecord =>
  typeof value === "object" && value !== null && "at" in value && typeof value.at === "number" &&
  Number.isFinite(value.at) && "tag" in value && typeof value.tag === "string" && "message" in value &&
  typeof value.message === "string"

/**
 * An attempt history as the scripts store it (a JSON array of `{ at, tag, message }`); an empty one when the text is
 * empty or malformed (written by something else): it never fails. @internal
 */
export const readHistory = (json: string): ReadonlyArray<Broker.AttemptRecord> => {
  if (json === "") return []
  try {
    const parsed: unknown = JSON.parse(json)
    if (Array.isArray(parsed) && parsed.every(isAttemptRecord)) {
      return parsed.map((r) => ({ at: r.at, tag: r.tag, message: r.message }))
    }
  } catch {
    // not JSON: no history
  }
  return []
}

/** A stored heartbeat, or none when the JSON is not one (written by something else). @internal */
export const readHeartbeat = (json: string): ReadonlyArray<Broker.Heartbeat> => {
  try {
    const parsed: unknown = JSON.parse(json)
    if (
      typeof parsed === "object" && parsed !== null && "id" in parsed && typeof parsed.id === "string" &&
      "expiresAt" in parsed && typeof parsed.expiresAt === "number" && "report" in parsed
    ) return [{ id: parsed.id, expiresAt: parsed.expiresAt, report: parsed.report }]
  } catch {
    // not JSON: skipped
  }
  return []
}
