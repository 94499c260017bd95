/**
 * The broker's Lua scripts: every state change of a queue is exactly one of them, so it is atomic.
 *
 * Each script receives the fourteen keys of one queue (see `keys.ts`) as `KEYS[1..14]`, in this order:
 *
 * | KEYS | name | type   | holds                                                                            |
 * | ---- | ---- | ------ | -------------------------------------------------------------------------------- |
 * | 1    | `R`  | list   | ready elements of priority 0, FIFO                                               |
 * | 2    | `HI` | zset   | ready elements of priority < 0: score = priority, member = 12 hex seq + element  |
 * | 3    | `LO` | zset   | ready elements of priority > 0: same layout as `HI`                              |
 * | 4    | `SEQ`| string | counter ordering `HI`/`LO`/`T` members and dead letters                          |
 * | 5    | `T`  | zset   | timers: delayed (score = eta, member = 12 hex seq + element), leases (`!<id>`)   |
 * | 6    | `F`  | hash   | in-flight: id → lease token + " " + element                                     |
 * | 7    | `D`  | zset   | dead letters: id, score = deadAt · 1000 + seq mod 1000                           |
 * | 8    | `DH` | hash   | dead letters: id → element (its `lastError` is the dead-letter reason); and      |
 * |      |      |        | `h:<id>` → attempt history JSON of a message that failed (see below)             |
 * | 9    | `W`  | zset   | wake-up marker (at most one member, `1`): blocking takes `BZPOPMIN` it          |
 * | 10   | `LIM`| hash   | limits of waiting and in-flight messages that have some: id → limits JSON       |
 * | 11   | `LS` | hash   | limit state: `r:<key>` → take times in the rate window, `c:<key>` → in flight   |
 * | 12   | `PK` | zset   | messages waiting for a concurrency slot (lexicographic: key NUL seq element)    |
 * | 13   | `K`  | hash   | idempotency keys: key → id of the message holding it                             |
 * | 14   | `KX` | zset   | idempotency windows: key → end of its window (ms), once its holder finished      |
 *
 * **Elements.** A message is stored as one string, in one of two forms:
 *
 * - compact: the body itself, when the body is an object whose first key is `"id"` holding the message id
 *   (of the characters of `luaIdClass`), priority is 0 and the message has no attempts, deliveries or last error;
 * - headed: `#` + JSON `[priority, attempts, deliveries, id, lastError?]` + `\n` + body JSON;
 * - keyed (a message sent with an idempotency key): headed, with `[priority, attempts, deliveries, id,
 *   lastError | false, key, keyTtl]`. A keyed header ends with a number (`keyTtl`); the others end with `"` or `}`,
 *   which is how an ack spots a keyed element without decoding it. A keyed element keeps its key through release,
 *   retry, dead letter, requeue and parking (every re-encode passes the key on).
 *
 * A body is its JSON, or, for Errand's envelope (a plain object whose `queue` is the element's queue), `~` + its JSON
 * without the `"queue"` field, which the element's keys imply (see `codec.ts`): a compact element then begins with
 * `~{"id":"`. The scripts pass bodies on as they are; only the codec reads the mark.
 *
 * **Attempt history.** A message that failed keeps its history in `DH` under `h:<id>`: a JSON array of `{ at, tag,
 * message }`, oldest first, at most 10 (`Broker.maxAttemptHistory`). A retry appends its error, a dead letter its
 * reason. It goes when the message does: an ack deletes it only when the element's attempts are not 0 (`failed`), so
 * acking a message that never failed costs no command; cancel, trim, purge and requeue delete it with the dead letter
 * or message (a requeued dead letter starts a fresh history). Counts of dead letters always read `D`, never `DH`.
 *
 * **Idempotency keys.** A key is held while `K` maps it to a message id and `KX` has no window for it, or one that
 * has not ended. Enqueue takes a free key (`HSET K`); an ack or dead-letter of its holder starts the window (`ZADD
 * KX`, or `HDEL K` for a window of 0); cancel releases it. Ended windows are pruned (bounded) whenever keys are used.
 *
 * **Ties.** Redis orders the members of equal score by their bytes, and an element's first bytes are its id (or a
 * header), not its age, so every sorted set of elements prefixes them with 12 hex digits of `SEQ` (`%012x`): messages
 * that share a priority (`HI`/`LO`) or an eta (`T`) keep the order in which they were added (the contract's
 * tie-break). A lease timer (`!<id>`, score = expiry) sorts before the delayed elements of the same score; a delayed
 * element written before the prefix existed begins with `{` or `#` and is read as it is.
 *
 * Time is never read inside Lua: `now` (epoch ms from Effect's `Clock`) is always an argument. Scripts never build key
 * names, so they are Redis Cluster safe. ioredis loads each script once per connection and sends `EVALSHA`, falling
 * back to `EVAL` on `NOSCRIPT` (after a server restart).
 *
 * @internal
 */
import type { Cluster, Redis } from "ioredis"
import { keyCount } from "./keys.ts"

/** The most messages one script call handles (take size, sweep batch, enqueue chunk). */
export const maxBatch = 1000

// The Lua helpers, each a snippet; a script includes only the ones it uses (a function defined in a script is created
// anew on every call, so unused ones would cost time).

const head = String.raw`
local R, HI, LO, SEQ, T, F, D, DH, W = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local call, byte, sub = redis.call, string.byte, string.sub
local LIM, K, KX = KEYS[10], KEYS[13], KEYS[14]
local wake = false
-- set by pushReady when it adds to HI or LO (a take then looks there even when its probe found them empty)
local prioritised = false
-- T's first timer score after maintain (false: T is empty; nil: unknown, or T changed since)
local timerAt = nil
`

/**
 * The characters of a message id, as a Lua pattern class: printable ASCII (space to `~`) other than `"` and `\`, the
 * grammar of `Message.isMessageId` (whose length limit, 255, is checked at enqueue). The scripts and the codec read an
 * id only when it is made of these characters, so both read the same id from every element; an element whose id is
 * not (written by another producer) gets its lease token as id, on both sides alike.
 */
export const luaIdClass = "[ !#-[%]^-~]"

/**
 * `decode(e)`: splits an element into priority, attempts, deliveries, id (or nil), lastError (or nil), body JSON, and
 * its idempotency key and window (nil, 0 when it has none).
 */
const decode = String.raw`
local function decode(e)
  if byte(e, 1) == 35 then
    local nl = string.find(e, "\n", 2, true)
    if nl then
      local ok, h = pcall(cjson.decode, sub(e, 2, nl - 1))
      if ok and type(h) == "table" then
        local err, id, key = h[5], h[4], h[6]
        if type(err) ~= "table" then err = nil end
        if type(id) ~= "string" or not string.find(id, '^${luaIdClass}+$') then id = nil end
        if type(key) ~= "string" then key = nil end
        return tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0, id, err, sub(e, nl + 1), key,
          tonumber(h[7]) or 0
      end
    end
    return 0, 0, 0, nil, nil, e
  end
  return 0, 0, 0, string.match(e, '^~?{"id":"(${luaIdClass}+)"'), nil, e
end
`

/** `encode(p, a, d, id, err, body, key, ttl)`: joins the parts of an element, compact when that loses nothing. */
const encode = String.raw`
local function encode(p, a, d, id, err, body, key, ttl)
  if p == 0 and a == 0 and d == 0 and err == nil and key == nil then
    local at = 1
    if byte(body, 1) == 126 then at = 2 end
    if sub(body, at, at + 7 + #id) == '{"id":"' .. id .. '"' then return body end
  end
  local h
  if key then
    h = { p, a, d, id, err or false, key, ttl }
  elseif err then h = { p, a, d, id, err } else h = { p, a, d, id } end
  return "#" .. cjson.encode(h) .. "\n" .. body
end
`

/**
 * `pushReady(e, p, list)`: makes an element ready. Priority 0 is collected in `list` (RPUSHed by `flush`); others go
 * to HI/LO in sequence order, and set `wake`.
 */
const pushReady = String.raw`
local function pushReady(e, p, list)
  if p == 0 then
    list[#list + 1] = e
  else
    local n = call("INCR", SEQ)
    local key = LO
    if p < 0 then key = HI end
    call("ZADD", key, p, string.format("%012x", n) .. e)
    wake = true
    prioritised = true
  end
end
`

/**
 * `addTimers(timers)`: ZADDs delayed elements, collected as flat (eta, element) pairs in the order they were scheduled,
 * to T, each prefixed with 12 hex digits of SEQ (one INCRBY per call) so that equal etas come due in that order. Sets
 * `wake`.
 */
const addTimers = String.raw`
local function addTimers(timers)
  local n = #timers
  if n == 0 then return end
  local s = call("INCRBY", SEQ, n / 2) - n / 2
  for i = 2, n, 2 do
    s = s + 1
    timers[i] = string.format("%012x", s) .. timers[i]
  end
  for i = 1, n, 1000 do call("ZADD", T, unpack(timers, i, math.min(i + 999, n))) end
  wake = true
  timerAt = nil
end
`

/** `flush(list)`: RPUSHes the collected ready elements; true when R was empty before (a waiter may be blocked). */
const flush = String.raw`
local function flush(list)
  local n = #list
  if n == 0 then return false end
  local first = call("RPUSH", R, unpack(list, 1, math.min(1000, n)))
  for i = 1001, n, 1000 do call("RPUSH", R, unpack(list, i, math.min(i + 999, n))) end
  return first == math.min(1000, n)
end
`

/**
 * `maintain(now, limit, list)`: moves up to limit due timers (score <= now) back to ready, in timer order (eta, then
 * sequence): delayed elements (their sequence prefix dropped), and in-flight elements whose lease lapsed (their
 * deliveries count already includes the lost lease), freeing their concurrency slots. Reads T's first timer first:
 * when none is due (the usual case) that one command also tells `timerAt`. Needs decode, pushReady and limits.
 */
const maintain = String.raw`
local function maintain(now, limit, list)
  local first = call("ZRANGE", T, 0, 0, "WITHSCORES")
  if first[2] == nil then
    timerAt = false
    return
  end
  if tonumber(first[2]) > now then
    timerAt = first[2]
    return
  end
  timerAt = nil
  local due = call("ZRANGEBYSCORE", T, "-inf", now, "LIMIT", 0, limit)
  local n = #due
  if n == 0 then return end
  call("ZREM", T, unpack(due))
  local ids = {}
  for i = 1, n do
    local m = due[i]
    if byte(m, 1) == 33 then ids[#ids + 1] = sub(m, 2) end
  end
  local recs, k = nil, 0
  if #ids > 0 then
    recs = call("HMGET", F, unpack(ids))
    call("HDEL", F, unpack(ids))
  end
  for i = 1, n do
    local e = due[i]
    local b = byte(e, 1)
    if b == 33 then
      k = k + 1
      e = recs[k]
      if e then e = sub(e, string.find(e, " ", 1, true) + 1) end
    elseif b ~= 123 and b ~= 35 and b ~= 126 then
      e = sub(e, 13)
    end
    if e then pushReady(e, (decode(e)), list) end
  end
  freeSlots(ids, list, false)
end
`

/**
 * Limits (`Broker.Limits`), kept in KEYS[10..12]: LIM (id → limits JSON `{"r":[key,limit,windowMs],"c":[key,limit]}`),
 * LS (`r:<key>` → JSON array of take times in the rate window, `c:<key>` → in-flight count) and PK (messages waiting
 * for a concurrency slot: a lexicographic zset, member = key + NUL + 12 hex seq + element). Nothing is read unless
 * LIM exists, so queues without limits pay one EXISTS per call.
 *
 * `hasLimits()`; `freeSlots(ids, list, drop)`: ids left the in-flight set: their concurrency slots free, and one parked
 * message of each key is made ready (into `list`); with drop, their limits are deleted (acked or dead-lettered).
 * Needs decode and pushReady.
 */
const limits = String.raw`
local LS, PK = KEYS[11], KEYS[12]
local limitedQueue = nil
local function hasLimits()
  if limitedQueue == nil then limitedQueue = call("EXISTS", LIM) == 1 end
  return limitedQueue
end
local function freeSlots(ids, list, drop)
  if #ids == 0 or not hasLimits() then return end
  local lims = call("HMGET", LIM, unpack(ids))
  local gone = {}
  for i = 1, #ids do
    local l = lims[i]
    if l then
      if drop then gone[#gone + 1] = ids[i] end
      local c = cjson.decode(l).c
      if c then
        local key = c[1]
        if call("HINCRBY", LS, "c:" .. key, -1) <= 0 then call("HDEL", LS, "c:" .. key) end
        local parked = call("ZRANGEBYLEX", PK, "[" .. key .. "\0", "(" .. key .. "\1", "LIMIT", 0, 1)
        if parked[1] then
          call("ZREM", PK, parked[1])
          local e = sub(parked[1], #key + 14)
          pushReady(e, (decode(e)), list)
        end
      end
    end
  end
  if #gone > 0 then call("HDEL", LIM, unpack(gone)) end
end
`

/**
 * `admit(popped, out, now)`: moves the popped elements that their limits allow to `out` (counting them), delays the
 * rate-limited ones in T until their window has room, parks the concurrency-limited ones in PK; returns how many were
 * held back. Only `take` admits. Needs limits.
 */
const admit = String.raw`
local function admit(popped, out, now)
  local ids = {}
  for i = 1, #popped do
    local _, _, _, id = decode(popped[i])
    ids[i] = id or ""
  end
  local lims = call("HMGET", LIM, unpack(ids))
  local held = 0
  for i = 1, #popped do
    local e, l, ok = popped[i], lims[i], true
    if l then
      local L = cjson.decode(l)
      local r, c, log = L.r, L.c, nil
      if r then
        local raw = call("HGET", LS, "r:" .. r[1])
        local keep = {}
        if raw then
          local all = cjson.decode(raw)
          for k = 1, #all do
            if all[k] + r[3] > now then keep[#keep + 1] = all[k] end
          end
        end
        log = keep
        if #log >= r[2] then
          call("ZADD", T, log[1] + r[3], e)
          timerAt = nil
          ok = false
        end
      end
      if ok and c then
        if (tonumber(call("HGET", LS, "c:" .. c[1])) or 0) >= c[2] then
          call("ZADD", PK, 0, c[1] .. "\0" .. string.format("%012x", call("INCR", SEQ)) .. e)
          ok = false
        else
          call("HINCRBY", LS, "c:" .. c[1], 1)
        end
      end
      if ok and r then
        log[#log + 1] = now
        call("HSET", LS, "r:" .. r[1], cjson.encode(log))
      end
    end
    if ok then out[#out + 1] = e else held = held + 1 end
  end
  return held
end
`

/** `isKeyed(rec)`: whether an in-flight record (token, space, headed element) carries an idempotency key. */
const isKeyed = String.raw`
local function isKeyed(rec)
  local nl = string.find(rec, "\n", 1, true)
  if not nl then return false end
  local c = byte(rec, nl - 2)
  return byte(rec, nl - 1) == 93 and c ~= nil and c >= 48 and c <= 57
end
`

/**
 * `failed(s, i)`: whether the element starting at byte i of s records failed attempts (a headed element whose attempts
 * field is not 0), so that it may have an attempt history. Reads the header's second field; decodes nothing.
 */
export const failed = String.raw`
local function failed(s, i)
  if byte(s, i) ~= 35 then return false end
  local a = string.match(s, "^#%[[^,]*,([^,%]]*)", i)
  return a ~= nil and a ~= "0"
end
`

/**
 * `record(id, err, now)`: appends a failure (a LastError table) to the attempt history of message id, keeping the last
 * 10. A history that is not a JSON array (written by something else) starts afresh.
 */
const record = String.raw`
local function record(id, err, now)
  local f = "h:" .. id
  local raw = call("HGET", DH, f)
  local h
  if raw then
    local ok, v = pcall(cjson.decode, raw)
    if ok and type(v) == "table" then h = v end
  end
  h = h or {}
  local tag, message = "Unknown", ""
  if type(err) == "table" then
    if type(err.tag) == "string" then tag = err.tag end
    if type(err.message) == "string" then message = err.message end
  end
  h[#h + 1] = { at = now, tag = tag, message = message }
  while #h > 10 do table.remove(h, 1) end
  call("HSET", DH, f, cjson.encode(h))
end
`

/** `histories(ids, i, j)`: the ids of ids[i..j], each prefixed with `h:` (the field of its attempt history in DH). */
const histories = String.raw`
local function histories(ids, i, j)
  local out = {}
  for k = i or 1, j or #ids do out[#out + 1] = "h:" .. ids[k] end
  return out
end
`

/** `pruneKeys(now)`: releases up to 100 keys whose window ended. */
const pruneKeys = String.raw`
local function pruneKeys(now)
  local ended = call("ZRANGEBYSCORE", KX, "-inf", now, "LIMIT", 0, 100)
  if #ended > 0 then
    call("HDEL", K, unpack(ended))
    call("ZREM", KX, unpack(ended))
  end
end
`

/**
 * `endHold(key, id, ttl, now)`: the message id ended (acked or dead-lettered): if it holds key, its window starts
 * (or, for a window of 0, the key is released). Returns whether it held the key.
 */
const endHold = String.raw`
local function endHold(key, id, ttl, now)
  if call("HGET", K, key) ~= id then return false end
  if ttl > 0 then call("ZADD", KX, now + ttl, key) else call("HDEL", K, key) end
  return true
end
`

/**
 * `trimDead(now, ttl, max)`: drops dead letters (and their histories) older than ttl, then the oldest beyond max
 * (bounded per call). Brings histories along.
 */
const trimDead = histories + String.raw`
local function trimDead(now, ttl, max)
  local old = call("ZRANGEBYSCORE", D, "-inf", string.format("(%.0f", (now - ttl + 1) * 1000), "LIMIT", 0, 1000)
  if #old > 0 then
    call("HDEL", DH, unpack(old))
    call("HDEL", DH, unpack(histories(old)))
    call("HDEL", LIM, unpack(old))
    call("ZREM", D, unpack(old))
  end
  local over = call("ZCARD", D) - max
  if over > 0 then
    if over > 1000 then over = 1000 end
    local ids = call("ZRANGE", D, 0, over - 1)
    call("HDEL", DH, unpack(ids))
    call("HDEL", DH, unpack(histories(ids)))
    call("HDEL", LIM, unpack(ids))
    call("ZREMRANGEBYRANK", D, 0, over - 1)
  end
end
`

/**
 * `settle(now, o, list, ttl, max)`: applies the n settlements read from ARGV[o]: n, then per settlement (kind, id,
 * token, eta, json), kind one of a (ack), r (retry: eta, json = lastError), d (dead-letter: eta slot "1" when the
 * delivery ran the handler, "0" when not; json = reason), l (release: deliveries - 1, since a released lease is not
 * a lost one). A settlement whose lease is not current (no in-flight record for the id under that token: the lease was
 * swept after lapsing and the message perhaps taken again, or it was settled, or flushed) changes nothing; its
 * 0-based index is returned. A lapsed lease stays current until a sweep returns its message to the queue. Delayed
 * retries are timed in settlement order. Acked messages lose their limits (a dead letter keeps them until it is
 * purged or trimmed); every settled message frees its concurrency slot. An ack or dead-letter of a message holding
 * an idempotency key starts its key's window. A retry or dead letter records its error in the attempt history; an ack
 * of a message that failed before deletes its history (one HDEL, only then).
 * Needs decode, encode, pushReady, addTimers, limits, trimDead, isKeyed, pruneKeys, endHold, failed and record.
 */
const settle = String.raw`
local function settle(now, o, list, ttl, max)
  local n = tonumber(ARGV[o])
  local rejected = {}
  if n == 0 then return rejected end
  local ids = {}
  for i = 1, n do ids[i] = ARGV[o + 5 * i - 3] end
  local recs = call("HMGET", F, unpack(ids))
  local live, marks, seen, ended, forget = {}, {}, {}, {}, {}
  for i = 1, n do
    local id, rec = ids[i], recs[i]
    local tok = ARGV[o + 5 * i - 2] .. " "
    if rec and not seen[id] and sub(rec, 1, #tok) == tok then
      seen[id] = true
      live[#live + 1] = id
      marks[#marks + 1] = "!" .. id
      if ARGV[o + 5 * i - 4] ~= "a" then
        recs[i] = sub(rec, #tok + 1)
      else
        if isKeyed(rec) then ended[#ended + 1] = sub(rec, #tok + 1) end
        if failed(rec, #tok + 1) then forget[#forget + 1] = "h:" .. id end
      end
    else
      rejected[#rejected + 1] = i - 1
      recs[i] = false
    end
  end
  if #live == 0 then return rejected end
  call("HDEL", F, unpack(live))
  call("ZREM", T, unpack(marks))
  if #forget > 0 then call("HDEL", DH, unpack(forget)) end
  if hasLimits() then
    local gone, back = {}, {}
    for i = 1, n do
      if recs[i] then
        local kind = ARGV[o + 5 * i - 4]
        if kind == "a" then gone[#gone + 1] = ids[i] else back[#back + 1] = ids[i] end
      end
    end
    freeSlots(gone, list, true)
    freeSlots(back, list, false)
  end
  local dead, timers, holds = 0, {}, false
  -- acked keyed messages: their key's window starts
  for i = 1, #ended do
    local _, _, _, id, _, _, key, kttl = decode(ended[i])
    if key and type(id) == "string" and endHold(key, id, kttl, now) then holds = true end
  end
  for i = 1, n do
    local rec = recs[i]
    local kind = ARGV[o + 5 * i - 4]
    if rec and kind ~= "a" then
      local p, a, d, id, err, body, key, kttl = decode(rec)
      if type(id) ~= "string" then id = ids[i] end
      if kind == "l" then
        -- a released lease is not a lost one: it does not count in deliveries
        pushReady(encode(p, a, math.max(d - 1, 0), id, err, body, key, kttl), p, list)
      elseif kind == "r" then
        local failure = cjson.decode(ARGV[o + 5 * i])
        record(id, failure, now)
        local e = encode(p, a + 1, d, id, failure, body, key, kttl)
        local eta = tonumber(ARGV[o + 5 * i - 1])
        if eta <= now then
          pushReady(e, p, list)
        else
          timers[#timers + 1] = eta
          timers[#timers + 1] = e
        end
      else
        -- a dead letter counts handler runs: this delivery's counts when it ran (eta slot "1")
        if ARGV[o + 5 * i - 1] ~= "0" then a = a + 1 end
        local reason = cjson.decode(ARGV[o + 5 * i])
        record(id, reason, now)
        local e = encode(p, a, d, id, reason, body, key, kttl)
        if key and endHold(key, id, kttl, now) then holds = true end
        local seq = call("INCR", SEQ)
        call("ZADD", D, now * 1000 + seq % 1000, id)
        call("HSET", DH, id, e)
        dead = dead + 1
      end
    end
  end
  addTimers(timers)
  if dead > 0 then
    trimDead(now, ttl, max)
    -- a backstop for abandoned queues (scores enforce the TTL by Clock time; PEXPIRE runs on Redis time)
    call("PEXPIRE", D, ttl + 86400000)
    call("PEXPIRE", DH, ttl + 86400000)
  end
  if holds then pruneKeys(now) end
  return rejected
end
`

/**
 * The Lua source of each script, with its contract. `KEYS` is always the fourteen keys above.
 */
export const sources = {
  /**
   * enqueue: adds messages, after sweeping due timers (so a message that came due earlier is taken first).
   *
   * ARGV: now, sweepLimit, nPlain, nOther, then nPlain elements that are ready now with priority 0 (in order), then
   * nOther × (eta, priority, element), then nLimited, then nLimited × (id, limits JSON) (stored in LIM before the
   * elements become takable), then (optionally) nKeyed, then nKeyed × (eta, priority, element, key, id). Plain
   * elements go to R with one RPUSH, without a Lua loop. A batch with idempotency keys sends all its messages in the
   * keyed part (key "" for those without), so that they stay in order.
   * Effects: eta > now → ZADD T (sequenced in argument order, see addTimers); else priority 0 → RPUSH R, other →
   * ZADD HI/LO. Sets the wake marker when R was empty, or a delayed/prioritised message was added. A keyed message
   * whose key is held is left out (and its limits are not stored).
   * Returns: { index (0-based, in the keyed part), id of the key's holder } × suppressed, flattened.
   */
  enqueue: head + decode + pushReady + addTimers + flush + limits + maintain + pruneKeys + String.raw`
local now, limit, np, no = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local list = {}
maintain(now, limit, list)
local timers = {}
-- a message due later waits in T, one due now is ready
local function place(eta, p, e)
  if eta > now then
    timers[#timers + 1] = eta
    timers[#timers + 1] = e
  else
    pushReady(e, p, list)
  end
end
local lb = 5 + np + 3 * no
local nl = tonumber(ARGV[lb]) or 0
local kb = lb + 1 + 2 * nl
local nk = tonumber(ARGV[kb]) or 0
local dups, suppressed = {}, nil
if nk > 0 then
  pruneKeys(now)
  for i = 1, nk do
    local b = kb + 5 * i - 4
    local eta, e, key, id = tonumber(ARGV[b]), ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
    local holder = false
    if key ~= "" then
      holder = call("HGET", K, key)
      if holder then
        local ends = call("ZSCORE", KX, key)
        if ends and tonumber(ends) <= now then
          call("ZREM", KX, key)
          holder = false
        end
      end
      if not holder then call("HSET", K, key, id) end
    end
    if holder then
      dups[#dups + 1] = i - 1
      dups[#dups + 1] = holder
      suppressed = suppressed or {}
      suppressed[id] = true
    else
      place(eta, tonumber(ARGV[b + 1]), e)
    end
  end
end
for i = 1, no do
  local b = 4 + np + 3 * i - 2
  place(tonumber(ARGV[b]), tonumber(ARGV[b + 1]), ARGV[b + 2])
end
addTimers(timers)
if flush(list) then wake = true end
if nl > 0 then
  if suppressed == nil then
    call("HSET", LIM, unpack(ARGV, lb + 1, lb + 2 * nl))
  else
    -- a suppressed message was not enqueued: its limits are not stored
    local kept = {}
    for i = lb + 1, lb + 2 * nl, 2 do
      if not suppressed[ARGV[i]] then
        kept[#kept + 1] = ARGV[i]
        kept[#kept + 1] = ARGV[i + 1]
      end
    end
    if #kept > 0 then call("HSET", LIM, unpack(kept)) end
  end
end
if np > 0 then
  for i = 5, 4 + np, 1000 do
    local j = math.min(i + 999, 4 + np)
    -- R was empty before (a waiter may be blocked) when the list is exactly what this call pushed
    if call("RPUSH", R, unpack(ARGV, i, j)) == j - 4 + #list then wake = true end
  end
end
if wake then call("ZADD", W, 0, "1") end
return dups
`,
  /**
   * take: applies settlements, sweeps due timers, then leases up to max ready messages (HI, then R, then LO).
   *
   * ARGV: now, max, leaseExpiry, tokenBase, wantNext (1/0), sweepLimit, deadTtl, deadMax, then settlements
   * (n, then n × (kind, id, token, eta, json)), then, for a take pipelined behind a blocking wait, the wait's length
   * in ms (the take runs up to that much after now).
   * Effects: each leased element gets deliveries + 1 and is stored as F[id] = token + " " + element (token i =
   * tokenBase..i), with a timer `!id` at leaseExpiry in T. Sets the wake marker after a full take (ready messages may remain: another waiter should
   * look), or when settlements made messages delayed or prioritised.
   * Returns: { rejected settlement indices (0-based), leased elements (token i = tokenBase..i, 1-based),
   * next timer score (the leases just taken included) or nil: only when fewer than max were leased and wantNext = 1 }.
   * A take that leased fewer than max left nothing ready: until the wake marker is set again (every way a message
   * becomes ready sets it, but a timer coming due), a blocking wait needs no take before it.
   */
  take: head + decode + encode + pushReady + addTimers + flush + limits + admit + maintain + trimDead + isKeyed +
    pruneKeys +
    endHold + failed + record + settle + String.raw`
local now, max, expiry, base = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
-- one probe for what most queues never use, prioritised messages (HI, LO) and limits (LIM): without them a take
-- pops only R
local extras = call("EXISTS", HI, LO, LIM) > 0
if not extras then limitedQueue = false end
local list = {}
local rejected = settle(now, 9, list, tonumber(ARGV[7]), tonumber(ARGV[8]))
maintain(now, tonumber(ARGV[6]), list)
flush(list)
local function popReady(k, into)
  local start = #into
  local sets = extras or prioritised
  if sets then
    local hi = call("ZPOPMIN", HI, k)
    for i = 1, #hi, 2 do into[#into + 1] = sub(hi[i], 13) end
  end
  if #into - start < k then
    local l = call("LPOP", R, k - (#into - start))
    if l then for i = 1, #l do into[#into + 1] = l[i] end end
  end
  if sets and #into - start < k then
    local lo = call("ZPOPMIN", LO, k - (#into - start))
    for i = 1, #lo, 2 do into[#into + 1] = sub(lo[i], 13) end
  end
end
local out = {}
if hasLimits() then
  -- A take pipelined behind a blocking wait runs up to lag ms after its now (one more ARGV after the settlements):
  -- rate windows then use Redis's clock when it lies within that lag of now (under TestClock it does not).
  local rnow = now
  if #ARGV == 10 + 5 * tonumber(ARGV[9]) then
    local t = call("TIME")
    local server = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if server > now and server - now <= tonumber(ARGV[#ARGV]) + 1000 then rnow = server end
  end
  -- messages held back by their limits are set aside: pop again, a bounded number of times, to fill the take
  for round = 1, 10 do
    local popped = {}
    popReady(max - #out, popped)
    if #popped == 0 or admit(popped, out, rnow) == 0 or #out >= max then break end
    -- still held back after ten rounds: another take (after this one) goes on through what is ready
    if round == 10 then wake = true end
  end
else
  popReady(max, out)
end
local n = #out
if n > 0 then
  local hs, zs = {}, {}
  for i = 1, n do
    local e, tok, id, rec = out[i], base .. i, nil, nil
    if byte(e, 1) ~= 35 then id = string.match(e, '^~?{"id":"(${luaIdClass}+)"') end
    if id then
      -- compact (the common case): its id needs no escaping, so the header is written without cjson
      rec = '#[0,0,1,"' .. id .. '"]\n' .. e
    else
      local p, a, d, did, err, body, key, kttl = decode(e)
      id = did
      if type(id) ~= "string" then id = tok end
      rec = encode(p, a, d + 1, id, err, body, key, kttl)
    end
    out[i] = rec
    hs[2 * i - 1] = id
    hs[2 * i] = tok .. " " .. rec
    zs[2 * i - 1] = expiry
    zs[2 * i] = "!" .. id
  end
  call("HSET", F, unpack(hs))
  call("ZADD", T, unpack(zs))
end
-- A full take may leave ready messages behind: wake another waiter (a spurious wake-up costs it one take).
if wake or n == max then call("ZADD", W, 0, "1") end
-- the next timer, for a take that is not full: what a wait that follows must not sleep past
local nextAt = false
if n < max and ARGV[5] == "1" then
  if timerAt == nil then
    local t = call("ZRANGE", T, 0, 0, "WITHSCORES")
    if t[2] then nextAt = t[2] end
  else
    nextAt = timerAt
    if n > 0 and (not nextAt or tonumber(expiry) < tonumber(nextAt)) then nextAt = expiry end
  end
end
return { rejected, out, nextAt }
`,
  /**
   * settle: applies settlements (see take).
   *
   * ARGV: now, deadTtl, deadMax, then n, then n × (kind, id, token, eta, json).
   * Returns: rejected settlement indices (0-based).
   */
  settle: head + decode + encode + pushReady + addTimers + flush + limits + trimDead + isKeyed + pruneKeys + endHold +
    failed + record + settle + String.raw`
local now = tonumber(ARGV[1])
local list = {}
local rejected = settle(now, 4, list, tonumber(ARGV[2]), tonumber(ARGV[3]))
if flush(list) or wake then call("ZADD", W, 0, "1") end
return rejected
`,
  /**
   * extend: moves the timers of current leases (see settle) to a new expiry.
   *
   * ARGV: now, expiry, then n × (id, token).
   * Returns: indices (0-based) of the tokens whose lease was lost.
   */
  extend: String.raw`
local T, F = KEYS[5], KEYS[6]
local expiry = ARGV[2]
local n = (#ARGV - 2) / 2
local rejected = {}
if n == 0 then return rejected end
local ids = {}
for i = 1, n do ids[i] = ARGV[2 * i + 1] end
local recs = redis.call("HMGET", F, unpack(ids))
local live = {}
for i = 1, n do
  local tok = ARGV[2 * i + 2] .. " "
  local rec = recs[i]
  if rec and string.sub(rec, 1, #tok) == tok then
    live[#live + 1] = expiry
    live[#live + 1] = "!" .. ids[i]
  else
    rejected[#rejected + 1] = i - 1
  end
end
if #live > 0 then redis.call("ZADD", T, "XX", unpack(live)) end
return rejected
`,
  /**
   * stats: sweeps due timers, then counts.
   *
   * ARGV: now, sweepLimit, deadTtl.
   * Returns: { ready, delayed, inFlight, dead }.
   */
  stats: head + decode + pushReady + flush + limits + maintain + String.raw`
local now = tonumber(ARGV[1])
local list = {}
maintain(now, tonumber(ARGV[2]), list)
if flush(list) or wake then call("ZADD", W, 0, "1") end
local inFlight = call("HLEN", F)
local ready = call("LLEN", R) + call("ZCARD", HI) + call("ZCARD", LO)
local dead = call("ZCOUNT", D, string.format("(%.0f", (now - tonumber(ARGV[3]) + 1) * 1000), "+inf")
return { ready, call("ZCARD", T) - inFlight + call("ZCARD", PK), inFlight, dead }
`,
  /**
   * deadList: trims the dead letters (ttl, max), then lists the oldest after skipping offset.
   *
   * ARGV: now, deadTtl, deadMax, limit (-1 = all), offset.
   * Returns: { id, score, element, history JSON or "" } × n, flattened.
   */
  deadList: head + trimDead + String.raw`
local now, limit, offset = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[5])
trimDead(now, tonumber(ARGV[2]), tonumber(ARGV[3]))
local ids = call("ZRANGE", D, offset, limit >= 0 and offset + limit - 1 or -1, "WITHSCORES")
local out = {}
local n = #ids / 2
if n == 0 then return out end
local only = {}
for i = 1, n do only[i] = ids[2 * i - 1] end
local recs = {}
for i = 1, n, 1000 do
  local j = math.min(i + 999, n)
  local r = call("HMGET", DH, unpack(only, i, j))
  local h = call("HMGET", DH, unpack(histories(only, i, j)))
  for k = 1, #r do
    recs[2 * (i + k - 1) - 1] = r[k]
    recs[2 * (i + k - 1)] = h[k]
  end
end
for i = 1, n do
  out[#out + 1] = only[i]
  out[#out + 1] = ids[2 * i]
  out[#out + 1] = recs[2 * i - 1] or ""
  out[#out + 1] = recs[2 * i] or ""
end
return out
`,
  /**
   * deadRequeue: trims the dead letters, then moves the selected ones back to ready with attempts and deliveries
   * reset to 0, no last error and no attempt history.
   *
   * ARGV: now, deadTtl, deadMax, all (1/0), then ids (when all = 0).
   * Returns: how many moved.
   */
  deadRequeue: head + decode + encode + pushReady + flush + trimDead + String.raw`
local now = tonumber(ARGV[1])
trimDead(now, tonumber(ARGV[2]), tonumber(ARGV[3]))
local ids
if ARGV[4] == "1" then
  ids = call("ZRANGE", D, 0, -1)
else
  ids = {}
  for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local n = #ids
if n == 0 then return 0 end
local list, moved = {}, 0
for i = 1, n, 1000 do
  local j = math.min(i + 999, n)
  local recs = call("HMGET", DH, unpack(ids, i, j))
  for k = 1, #recs do
    local rec = recs[k]
    if rec then
      local p, a, d, id, err, body, key, kttl = decode(rec)
      if type(id) ~= "string" then id = ids[i + k - 1] end
      -- a requeued dead letter keeps its key in its element, but does not take the key again
      pushReady(encode(p, 0, 0, id, nil, body, key, kttl), p, list)
      moved = moved + 1
    end
  end
  call("ZREM", D, unpack(ids, i, j))
  call("HDEL", DH, unpack(ids, i, j))
  call("HDEL", DH, unpack(histories(ids, i, j)))
end
if flush(list) or wake then call("ZADD", W, 0, "1") end
return moved
`,
  /**
   * deadPurge: deletes the selected dead letters.
   *
   * ARGV: all (1/0), then ids (when all = 0).
   * Returns: how many were deleted.
   */
  deadPurge: histories + String.raw`
local D, DH, LIM = KEYS[7], KEYS[8], KEYS[10]
if ARGV[1] == "1" then
  -- DH also holds the histories of live messages that failed: only the dead letters' fields go
  local n = redis.call("ZCARD", D)
  if n > 0 then
    local ids = redis.call("ZRANGE", D, 0, -1)
    local lim = redis.call("EXISTS", LIM) == 1
    for i = 1, #ids, 1000 do
      local j = math.min(i + 999, #ids)
      redis.call("HDEL", DH, unpack(ids, i, j))
      redis.call("HDEL", DH, unpack(histories(ids, i, j)))
      if lim then redis.call("HDEL", LIM, unpack(ids, i, j)) end
    end
    redis.call("DEL", D)
  end
  return n
end
local n = 0
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
for i = 1, #ids, 1000 do
  local j = math.min(i + 999, #ids)
  n = n + redis.call("ZREM", D, unpack(ids, i, j))
  redis.call("HDEL", DH, unpack(ids, i, j))
  redis.call("HDEL", DH, unpack(histories(ids, i, j)))
  redis.call("HDEL", LIM, unpack(ids, i, j))
end
return n
`,
  /**
   * cancel: sweeps due timers, then removes the ready, delayed or parked (waiting for a concurrency slot) messages
   * with the given ids, releases their idempotency keys and drops their limits. Leased messages are left alone.
   * Finding a message is a scan of the queue's timers, ready lists and parked set, 1000 members per command, stopping
   * when every id is found: O(queue length) in the worst case.
   *
   * ARGV: now, sweepLimit, then ids.
   * Returns: one of "cancelled", "running", "notFound" per id.
   */
  cancel: head + decode + pushReady + flush + limits + maintain + failed + String.raw`
local now = tonumber(ARGV[1])
local list = {}
maintain(now, tonumber(ARGV[2]), list)
if flush(list) or wake then call("ZADD", W, 0, "1") end
local out, want, left = {}, {}, 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if call("HEXISTS", F, id) == 1 then
    out[i - 2] = "running"
  else
    out[i - 2] = "notFound"
    if not want[id] then
      want[id] = {}
      left = left + 1
    end
    local w = want[id]
    w[#w + 1] = i - 2
  end
end
-- the id of an element, or of a member of T, HI, LO (after an optional 12-hex sequence prefix); nil for a lease marker
local function idOf(m)
  local c = byte(m, 1)
  if c == 33 then return nil end
  if c ~= 123 and c ~= 35 and c ~= 126 then m = sub(m, 13) end
  local id = string.match(m, '^~?{"id":"(${luaIdClass}+)"')
  if id then return id, m end
  id = string.match(m, '^#%[[^,]*,[^,]*,[^,]*,"([^"]*)"')
  -- cjson escapes "/" in the ids it writes: decode those headers properly
  if id and string.find(id, "\\", 1, true) then
    local _, _, _, did = decode(m)
    id = did
  end
  return id, m
end
local function found(id, e)
  for _, i in ipairs(want[id]) do out[i] = "cancelled" end
  want[id] = nil
  left = left - 1
  local _, _, _, _, _, _, key = decode(e)
  if key and call("HGET", K, key) == id then
    call("HDEL", K, key)
    call("ZREM", KX, key)
  end
  if hasLimits() then call("HDEL", LIM, id) end
  if failed(e, 1) then call("HDEL", DH, "h:" .. id) end
end
local function scanZset(key, parked)
  local from = 0
  while left > 0 do
    local page = call("ZRANGE", key, from, from + 999)
    if #page == 0 then return end
    local gone = {}
    for i = 1, #page do
      local m = page[i]
      if parked then
        -- a parked member: concurrency key, NUL, 12 hex digits of sequence, element
        local z = string.find(m, "\0", 1, true)
        m = z and sub(m, z + 13) or "!"
      end
      local id, e = idOf(m)
      if id and want[id] then
        gone[#gone + 1] = page[i]
        found(id, e)
      end
    end
    if #gone > 0 then call("ZREM", key, unpack(gone)) end
    from = from + 1000 - #gone
  end
end
scanZset(T, false)
scanZset(HI, false)
scanZset(LO, false)
scanZset(PK, true)
local from = 0
while left > 0 do
  local page = call("LRANGE", R, from, from + 999)
  if #page == 0 then break end
  local gone = 0
  for i = 1, #page do
    local id, e = idOf(page[i])
    if id and want[id] then
      call("LREM", R, 1, page[i])
      gone = gone + 1
      found(id, e)
    end
  end
  from = from + 1000 - gone
end
return out
`,
  /**
   * claimSlot: claims a schedule's slot and enqueues its message, atomically: the claim of slot s succeeds when the
   * schedule's last claimed slot is absent or below s. KEYS: the queue's keys, then CRON (hash in the queue's hash
   * tag: schedule name → last claimed slot).
   *
   * ARGV: schedule, slot, then the enqueue script's ARGV (now, sweepLimit, nPlain, nOther, elements...).
   * Returns: 1 when claimed and enqueued, 0 when the slot (or a later one) was already claimed.
   */
  claimSlot: head + decode + pushReady + flush + limits + maintain + String.raw`
local CRON, schedule, slot = KEYS[#KEYS], ARGV[1], tonumber(ARGV[2])
local last = tonumber(call("HGET", CRON, schedule))
if last and last >= slot then return 0 end
call("HSET", CRON, schedule, ARGV[2])
local now, limit, np, no = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local list = {}
maintain(now, limit, list)
for i = 1, no do
  local b = 6 + np + 3 * i - 2
  local eta, e = tonumber(ARGV[b]), ARGV[b + 2]
  if eta > now then
    call("ZADD", T, eta, e)
    wake = true
  else
    pushReady(e, tonumber(ARGV[b + 1]), list)
  end
end
for i = 7, 6 + np do list[#list + 1] = ARGV[i] end
local lb = 7 + np + 3 * no
local nl = tonumber(ARGV[lb]) or 0
if nl > 0 then call("HSET", LIM, unpack(ARGV, lb + 1, lb + 2 * nl)) end
if flush(list) then wake = true end
if wake then call("ZADD", W, 0, "1") end
return 1
`
} as const

/** Scripts that declare more keys than those of a queue. */
const extraKeys: Partial<Record<keyof typeof sources, number>> = { claimSlot: 1 }

/** The name of each script as an ioredis command. */
export type ScriptName = keyof typeof sources

type Arg = string | number

/** The ioredis client with the scripts defined as commands (`redis.errand_take(...keys, ...argv)`). */
export interface ScriptClient {
  readonly errand_enqueue: (...args: ReadonlyArray<Arg>) => Promise<Array<number | string>>
  readonly errand_take: (...args: ReadonlyArray<Arg>) => Promise<[Array<number>, Array<string>, string | null]>
  readonly errand_settle: (...args: ReadonlyArray<Arg>) => Promise<Array<number>>
  readonly errand_extend: (...args: ReadonlyArray<Arg>) => Promise<Array<number>>
  readonly errand_stats: (...args: ReadonlyArray<Arg>) => Promise<[number, number, number, number]>
  readonly errand_deadList: (...args: ReadonlyArray<Arg>) => Promise<Array<string>>
  readonly errand_deadRequeue: (...args: ReadonlyArray<Arg>) => Promise<number>
  readonly errand_deadPurge: (...args: ReadonlyArray<Arg>) => Promise<number>
  readonly errand_cancel: (...args: ReadonlyArray<Arg>) => Promise<Array<"cancelled" | "running" | "notFound">>
  readonly errand_claimSlot: (...args: ReadonlyArray<Arg>) => Promise<number>
}

/**
 * Defines every script on a client, standalone or Cluster (ioredis then uses EVALSHA and reloads on NOSCRIPT; a Cluster
 * client routes each call by the slot of its keys, which all share one hash tag).
 */
export const define = <C extends Redis | Cluster>(redis: C): C & ScriptClient => {
  for (const name of Object.keys(sources) as Array<ScriptName>) {
    redis.defineCommand(`errand_${name}`, { lua: sources[name], numberOfKeys: keyCount + (extraKeys[name] ?? 0) })
  }
  return redis as C & ScriptClient
}
