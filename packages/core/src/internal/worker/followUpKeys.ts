/**
 * Idempotency keys of the follow-up messages a worker sends before it acks a message (its callbacks, its pipeline's
 * next step, its group's callback). A message run again after a crash between the follow-up's enqueue and its own ack
 * sends the follow-up again: under the same key, the broker leaves the second one out while the first is queued,
 * running, or finished less than `followUpKeyTtl` ago.
 *
 * Keys: `<parent id>:ok` (its `onSuccess`), `<parent id>:fail` (its `onFailure`), `<parent id>:next` (its pipeline's
 * next step), `group:<group id>:complete` / `group:<group id>:failure` (a group's callbacks). Ids are written in a
 * key-safe, one-to-one form (`keyPart`).
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { maxKeyLength } from "../../Broker.ts"

/** How long a follow-up's key stays held after the follow-up finished: 1 hour, the actors' default window. */
export const followUpKeyTtl = 3_600_000

/** The kinds of follow-up keyed by their parent message's id. */
export type FollowUpKind = "ok" | "fail" | "next"

/** Characters of `Broker.keyPattern` kept as they are (every one but `=`, the escape character). */
const plain = /^[A-Za-z0-9_.:@/+-]*$/

/** The longest id part, leaving room for the longest prefix and suffix (`group:` … `:complete`). */
const maxPart = maxKeyLength - "group:".length - ":complete".length

/**
 * An id in the key grammar, one-to-one: the id itself when it is made of key characters other than `=` (Errand's
 * ids, UUIDs); otherwise each other character is written `=` + two uppercase hex digits; when that is too long,
 * `=h` + the SHA-256 of the id in base64url (an escape is always followed by a hex digit, so the forms never meet).
 */
export const keyPart = (id: string): string => {
  if (id.length <= maxPart && plain.test(id)) return id
  let escaped = ""
  for (const char of id) {
    const code = char.charCodeAt(0)
    // beyond Latin-1 (never in a valid id), or too long already
    if (code >= 0x100 || escaped.length > maxPart) return hashed(id)
    escaped += plain.test(char) ? char : "=" + code.toString(16).toUpperCase().padStart(2, "0")
  }
  return escaped.length <= maxPart ? escaped : hashed(id)
}

const hashed = (id: string): string => "=h" + createHash("sha256").update(id).digest("base64url")

/** The key of a follow-up sent for the message `parentId`. */
export const followUpKey = (parentId: string, kind: FollowUpKind): string => `${keyPart(parentId)}:${kind}`

/** The key of a group's callback. */
export const groupCallbackKey = (groupId: string, kind: "complete" | "failure"): string =>
  `group:${keyPart(groupId)}:${kind}`
