/**
 * Group records (`Broker.recordGroupMember`): one hash per group, `{<prefix>:group:<group id>}` (a hash tag of its
 * own, so a group is one key on one node of a Cluster), holding one field per recorded member (`m:<member id>` →
 * `1` succeeded / `0` failed), the counts (`~s`, `~f`), the member that completed it (`~c`) and the first that
 * failed (`~x`). One script records a member once and returns the counts,
 * atomically; the key expires `ttl` after its last change (Redis time).
 *
 * @internal
 */
import type { Cluster, Redis } from "ioredis"

const RECORD = `local key, member, ok, size, ttl = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local recorded = redis.call("HSETNX", key, "m:" .. member, ok)
if recorded == 1 then
  if ok == "1" then
    local s = redis.call("HINCRBY", key, "~s", 1)
    local f = tonumber(redis.call("HGET", key, "~f")) or 0
    if f == 0 and s >= size then redis.call("HSETNX", key, "~c", member) end
  else
    redis.call("HINCRBY", key, "~f", 1)
    redis.call("HSETNX", key, "~x", member)
  end
end
redis.call("PEXPIRE", key, ttl)
local v = redis.call("HMGET", key, "~s", "~f", "~c", "~x")
return { tonumber(v[1]) or 0, tonumber(v[2]) or 0, recorded, v[3] or "", v[4] or "" }`

/** @internal */
export interface GroupClient {
  readonly errand_group_record: (
    key: string,
    member: string,
    succeeded: "1" | "0",
    size: number,
    ttlMillis: number
  ) => Promise<[number, number, number, string, string]>
}

/** Defines the group script on a client. @internal */
export const define = <C extends Redis | Cluster>(client: C): C & GroupClient => {
  client.defineCommand("errand_group_record", { lua: RECORD, numberOfKeys: 1 })
  return client as C & GroupClient
}

/** The key of a group's record. @internal */
export const key = (prefix: string, group: string): string => `{${prefix}:group:${group}}`
