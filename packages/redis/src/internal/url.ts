/**
 * Redis URLs: the checks a URL must pass before ioredis sees it, and the redacted form every message and log line
 * shows instead of it.
 *
 * The URL is parsed with the WHATWG `URL` parser, the one ioredis uses, never matched with a regular expression: what
 * counts as the password here is what ioredis would send. Redaction never trusts a parse that could have split a
 * password: a password with an unencoded `/`, `?` or `#` ends the authority early, so the part after it (holding an
 * `@`) would land in the host, path, query or fragment. Such a URL is refused, and its redacted form masks everything
 * between `//` and its last `@`.
 *
 * @internal
 */

/** A URL that passed the checks. */
export interface CheckedUrl {
  readonly url: string
  /** The URL for messages: password `***`, no query or fragment. */
  readonly redacted: string
}

/** Why a URL was refused, with its redacted form. */
export interface InvalidUrl {
  readonly reason: "InvalidUrl"
  /** The URL for messages (see `redact`). */
  readonly redacted: string
  readonly message: string
}

/** What `redact` shows for a URL it cannot split safely into credentials and host. */
export const unparseable = "<unparseable URL>"

const schemes = ["redis://", "rediss://"] as const

/**
 * Masks the credentials of a URL that cannot be trusted to parse: everything between `//` and the last `@` becomes
 * `***`, and the query and fragment after the host are dropped (a query may carry `password=`). Without an `@`, or
 * without a `redis://` / `rediss://` scheme, nothing of it is shown: the text could be a bare password.
 */
const maskRaw = (raw: string): string => {
  const scheme = schemes.find((s) => raw.toLowerCase().startsWith(s))
  if (scheme === undefined) return unparseable
  const at = raw.lastIndexOf("@")
  if (at < scheme.length) return `${scheme}${unparseable}`
  let end = raw.length
  for (const stop of ["?", "#"]) {
    const index = raw.indexOf(stop, at + 1)
    if (index !== -1 && index < end) end = index
  }
  return `${scheme}***@${raw.slice(at + 1, end)}`
}

/** Whether the parse put part of the text after the authority although it holds an `@` (a split password). */
const splitCredentials = (parsed: URL): boolean =>
  parsed.pathname.includes("@") || parsed.search.includes("@") || parsed.hash.includes("@")

/**
 * The URL for messages and logs: the password replaced by `***`, the query and fragment dropped. The user name is
 * shown only when a password follows it (`redis://secret@host` may be meant as a password, so it is masked). A URL
 * that does not parse, or whose parse may have split a password, is masked from `//` to its last `@`.
 */
export const redact = (raw: string): string => {
  if (!URL.canParse(raw)) return maskRaw(raw)
  const parsed = new URL(raw)
  if (parsed.host === "" || splitCredentials(parsed)) return maskRaw(raw)
  const auth = parsed.password !== ""
    ? `${parsed.username}:***@`
    : parsed.username !== ""
    ? "***@"
    : ""
  return `${parsed.protocol}//${auth}${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`
}

const decodes = (component: string): boolean => {
  try {
    decodeURIComponent(component)
    return true
  } catch {
    return false
  }
}

const expected = "Expected redis://[user:password@]host[:port][/db] or rediss://…, with the user name and password " +
  "percent-encoded (encodeURIComponent)"

/** Checks a `redis://` / `rediss://` URL (host, port, database index, credentials ioredis can decode). */
export const check = (url: string): CheckedUrl | InvalidUrl => {
  const redacted = redact(url)
  const invalid = (why: string): InvalidUrl => ({
    reason: "InvalidUrl",
    redacted,
    message: `Invalid Redis URL ${redacted}: ${why}. ${expected}`
  })
  // The credentials as they would be if the last "@" ended them: a "/", "?" or "#" in them splits the parse
  const slashes = url.indexOf("//")
  const at = url.lastIndexOf("@")
  const credentials = slashes !== -1 && at > slashes ? url.slice(slashes + 2, at) : ""
  if (["/", "?", "#"].some((c) => credentials.includes(c))) {
    return invalid(
      "the user name or password seems to contain an unencoded \"/\", \"?\" or \"#\" (an \"@\" follows the host)"
    )
  }
  if (!URL.canParse(url)) return invalid("it does not parse as a URL")
  const parsed = new URL(url)
  // Without a host, what looks like a scheme may be a user name or password: it is not shown.
  if (parsed.host === "") return invalid("it has no host")
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    return invalid(`the scheme is "${parsed.protocol}", not redis: or rediss:`)
  }
  if (!decodes(parsed.username) || !decodes(parsed.password)) {
    return invalid(
      "the user name or password contains a \"%\" that does not start a percent-encoded byte (%25 is \"%\")"
    )
  }
  const db = parsed.pathname.replace(/^\//, "")
  if (db !== "" && !/^\d+$/.test(db)) return invalid(`the database index "${db}" is not a number`)
  return { url, redacted }
}

/**
 * Splits a comma-separated list of seed URLs (`redis://a:7000,redis://b:7000`) into its URLs. Only a comma followed by
 * `redis://` or `rediss://` separates two URLs, so a comma inside a password does not.
 */
export const split = (urls: string): Array<string> => urls.split(/,(?=\s*rediss?:\/\/)/).map((url) => url.trim())
