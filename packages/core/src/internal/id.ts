/** @internal */
import { randomFillSync } from "node:crypto"

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"
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
  let id = ""
  for (let i = 0; i < ID_LENGTH; i++) id += ALPHABET[pool[offset++]! & 63]
  return id
}

/** @internal */
export const leaseToken = messageId
