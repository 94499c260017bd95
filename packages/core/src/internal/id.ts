/** @internal */
import { randomFillSync } from "node:crypto"

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"
const CODES = Uint8Array.from(ALPHABET, (char) => char.charCodeAt(0))
const POOL_SIZE = 16 * 1024
const ID_LENGTH = 21 // 126 random bits, like nanoid
let pool = new Uint8Array(POOL_SIZE)
let offset = POOL_SIZE

/**
 * A 21-character url-safe random id (126 bits). Random bytes are drawn from the OS in blocks, so an id costs no
 * system call. Shorter than a UUID, which keeps queued messages small.
 *
 * @internal
 */
export const messageId = (): string => {
  if (offset + ID_LENGTH > POOL_SIZE) {
    pool = randomFillSync(pool)
    offset = 0
  }
  const p = pool, o = offset, c = CODES
  offset += ID_LENGTH
  // one flat string, without the 20 intermediate strings of appending a character at a time
  return String.fromCharCode(
    c[p[o]! & 63]!,
    c[p[o + 1]! & 63]!,
    c[p[o + 2]! & 63]!,
    c[p[o + 3]! & 63]!,
    c[p[o + 4]! & 63]!,
    c[p[o + 5]! & 63]!,
    c[p[o + 6]! & 63]!,
    c[p[o + 7]! & 63]!,
    c[p[o + 8]! & 63]!,
    c[p[o + 9]! & 63]!,
    c[p[o + 10]! & 63]!,
    c[p[o + 11]! & 63]!,
    c[p[o + 12]! & 63]!,
    c[p[o + 13]! & 63]!,
    c[p[o + 14]! & 63]!,
    c[p[o + 15]! & 63]!,
    c[p[o + 16]! & 63]!,
    c[p[o + 17]! & 63]!,
    c[p[o + 18]! & 63]!,
    c[p[o + 19]! & 63]!,
    c[p[o + 20]! & 63]!
  )
}

/** @internal */
export const leaseToken = messageId

/** The longest valid message id. @internal */
export const MAX_ID_LENGTH = 255

/**
 * The message id grammar: 1 to 255 printable ASCII characters (space to `~`) other than `"` and `\`. Such an id is the same
 * string in JSON, in a Lua pattern and in a Redis key, so every broker and script reads it alike. The ids above (21
 * characters of `[0-9A-Za-z_-]`) satisfy it.
 *
 * @internal
 */
export const ID_PATTERN = /^[ !#-[\]-~]{1,255}$/

/** @internal */
export const isMessageId = (id: unknown): id is string => typeof id === "string" && ID_PATTERN.test(id)

/**
 * The first message whose id is outside the grammar, if any.
 *
 * @internal
 */
export const firstInvalidId = <M extends { readonly id: string }>(messages: ReadonlyArray<M>): M | undefined => {
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i]!
    if (!isMessageId(message.id)) return message
  }
  return undefined
}
