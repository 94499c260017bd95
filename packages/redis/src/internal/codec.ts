/**
 * The element format shared with the Lua scripts (see `scripts.ts`): compact (the body JSON itself) or headed
 * (`#[priority, attempts, deliveries, id, lastError?]\n` + body JSON; a message with an idempotency key:
 * `#[priority, attempts, deliveries, id, lastError | false, key, keyTtl]\n` + body JSON).
 *
 * **Implied queue.** Every element lives in its queue's keys, so an envelope's `queue` field need not be stored: when
 * the body is a plain object whose `queue` names the queue written to (Errand's envelope: `{"id":…,"actor":…,
 * "queue":…,…}`), `encode` drops that field and marks the body JSON with a leading `~`; `decode` puts the field back
 * (as the last key). A body without the mark is the JSON as sent, so every body reads back equal to what was sent.
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

/** The first character of a body JSON whose `queue` field was dropped (`~`): see "Implied queue" above. */
const IMPLIED = 126

/** The characters of the id grammar, without its length limit (checked at enqueue), as the scripts check it. */
const readableId = /^[ !#-\[\]-~]+$/

/**
 * Encodes a message for enqueue. Returns `undefined` when the body is not JSON-serialisable (`undefined`, a function,
 * a symbol, a BigInt, a cycle).
 *
 * The compact form is used when it loses nothing: priority 0, and the body JSON starts with `{"id":"<id>"` where the
 * id needs no escaping. That is Errand's own envelope, whose first field is `id`.
 */
export const encode = (id: string, priority: number, body: unknown, queue: string): string | undefined => {
  const text = bodyText(body, queue)
  if (text === undefined) return undefined
  const at = text.charCodeAt(0) === IMPLIED ? 1 : 0
  if (
    priority === 0 && text.startsWith(compactPrefix, at) && text.startsWith(id, at + 7) &&
    text.charCodeAt(at + 7 + id.length) === 34 && readableId.test(id)
  ) {
    return text
  }
  return "#" + JSON.stringify([priority, 0, 0, id]) + "\n" + text
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
  keyTtl: number,
  queue: string
): string | undefined => {
  const text = bodyText(body, queue)
  if (text === undefined) return undefined
  return "#" + JSON.stringify([priority, 0, 0, id, false, key, Math.round(keyTtl)]) + "\n" + text
}

/**
 * The body's JSON; for a plain object whose `queue` field names `queue` (Errand's envelope), `~` + its JSON without
 * that field (the keys imply it; `readBody` puts it back).
 */
const bodyText = (body: unknown, queue: string): string | undefined => {
  try {
    return impliesQueue(body, queue) ? "~" + JSON.stringify({ ...body, queue: undefined }) : JSON.stringify(body)
  } catch {
    return undefined
  }
}

/** Whether `body` is a plain object (no `toJSON`) whose `queue` field is `queue`. */
const impliesQueue = (body: unknown, queue: string): body is { readonly queue: string } =>
  typeof body === "object" && body !== null && (body as { readonly queue?: unknown }).queue === queue &&
  Object.getPrototypeOf(body) === Object.prototype && !("toJSON" in body)

/** Reads a body JSON of `queue`: a marked one gets its `queue` field back. */
const readBody = (text: string, queue: string): unknown => {
  if (text.charCodeAt(0) !== IMPLIED) return parseBody(text)
  const body = parseBody(text.slice(1))
  if (typeof body !== "object" || body === null || Array.isArray(body)) return text
  ;(body as { queue?: string }).queue = queue
  return body
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
const compactId = /^~?\{"id":"([ !#-\[\]-~]+)"/

/** The id of an element (as `decode` reads it), without parsing its body. */
export const idOf = (element: string, fallbackId: string): string => {
  if (element.charCodeAt(0) !== 35) return compactId.exec(element)?.[1] ?? fallbackId
  const nl = element.indexOf("\n")
  const header = nl > 0 ? parseBody(element.slice(1, nl)) : undefined
  const id: unknown = Array.isArray(header) ? header[3] : undefined
  return typeof id === "string" && readableId.test(id) ? id : fallbackId
}

/** Decodes an element of `queue` written by `encode` or by the scripts. */
export const decode = (element: string, fallbackId: string, queue: string): Decoded => {
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
        body: readBody(element.slice(nl + 1), queue)
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
    body: readBody(element, queue)
  }
}

const toLastError = (u: unknown): LastError | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const { message, tag } = u as { readonly tag?: unknown; readonly message?: unknown }
  return { tag: typeof tag === "string" ? tag : "Unknown", message: typeof message === "string" ? message : "" }
}

/** Encodes a `LastError` for the scripts. */
export const encodeLastError = (error: LastError): string => JSON.stringify({ tag: error.tag, message: error.message })
