/**
 * The element format shared with the Lua scripts (see `scripts.ts`): compact (the body JSON itself) or headed
 * (`#[priority, attempts, deliveries, id, lastError?]\n` + body JSON; a message with an idempotency key:
 * `#[priority, attempts, deliveries, id, lastError | false, key, keyTtl]\n` + body JSON).
 *
 * @internal
 */
import type { Message } from "@errand/core"

type LastError = Message.LastError

/** A decoded element. */
export interface Decoded {
  readonly priority: number
  readonly attempts: number
  readonly deliveries: number
  readonly id: string
  readonly lastError: LastError | undefined
  readonly body: unknown
}

const compactPrefix = "{\"id\":\""

/** The characters of the id grammar, without its length limit (checked at enqueue), as the scripts check it. */
const readableId = /^[ !#-\[\]-~]+$/

/**
 * Encodes a message for enqueue. Returns `undefined` when the body is not JSON-serialisable (`undefined`, a function,
 * a symbol, a BigInt, a cycle).
 *
 * The compact form is used when it loses nothing: priority 0, and the body JSON starts with `{"id":"<id>"` where the
 * id needs no escaping. That is Errand's own envelope, whose first field is `id`.
 */
export const encode = (id: string, priority: number, body: unknown): string | undefined => {
  const json = stringify(body)
  if (json === undefined) return undefined
  if (
    priority === 0 && json.startsWith(compactPrefix) && json.startsWith(id, 7) &&
    json.charCodeAt(7 + id.length) === 34 && readableId.test(id)
  ) {
    return json
  }
  return "#" + JSON.stringify([priority, 0, 0, id]) + "\n" + json
}

/**
 * Encodes a message with an idempotency key: always headed, the key and its window (ms) last in the header (the
 * scripts spot a keyed element by the number that ends its header).
 */
export const encodeKeyed = (
  id: string,
  priority: number,
  body: unknown,
  key: string,
  keyTtl: number
): string | undefined => {
  const json = stringify(body)
  if (json === undefined) return undefined
  return "#" + JSON.stringify([priority, 0, 0, id, false, key, Math.round(keyTtl)]) + "\n" + json
}

const stringify = (body: unknown): string | undefined => {
  try {
    return JSON.stringify(body)
  } catch {
    return undefined
  }
}

/** Parses a JSON body, handing back the raw string when it is not JSON (core then dead-letters the message). */
export const parseBody = (raw: string): unknown => {
  try {
    return JSON.parse(raw)
  } catch {
    return raw
  }
}

/**
 * The id of a compact element: the characters of the id grammar (`Message.isMessageId`), as the scripts read it (see
 * `luaIdClass` in `scripts.ts`). An element whose id is not made of them gets its lease token as id, here and in the
 * scripts alike.
 */
const compactId = /^\{"id":"([ !#-\[\]-~]+)"/

/** Decodes an element written by `encode` or by the scripts. */
export const decode = (element: string, fallbackId: string): Decoded => {
  if (element.charCodeAt(0) === 35) {
    const nl = element.indexOf("\n")
    const header = nl > 0 ? parseBody(element.slice(1, nl)) : undefined
    if (Array.isArray(header)) {
      const [priority, attempts, deliveries, id, lastError] = header as [number, number, number, unknown, unknown]
      return {
        priority,
        attempts,
        deliveries,
        id: typeof id === "string" && readableId.test(id) ? id : fallbackId,
        lastError: toLastError(lastError),
        body: parseBody(element.slice(nl + 1))
      }
    }
    return { priority: 0, attempts: 0, deliveries: 0, id: fallbackId, lastError: undefined, body: element }
  }
  const match = compactId.exec(element)
  return {
    priority: 0,
    attempts: 0,
    deliveries: 0,
    id: match === null ? fallbackId : match[1]!,
    lastError: undefined,
    body: parseBody(element)
  }
}

const toLastError = (u: unknown): LastError | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const { message, tag } = u as { readonly tag?: unknown; readonly message?: unknown }
  return { tag: typeof tag === "string" ? tag : "Unknown", message: typeof message === "string" ? message : "" }
}

/** Encodes a `LastError` for the scripts. */
export const encodeLastError = (error: LastError): string => JSON.stringify({ tag: error.tag, message: error.message })
