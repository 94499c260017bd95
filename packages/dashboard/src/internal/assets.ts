/**
 * The page's files (`assets/` of the package: HTML, script and style; no CDN, no build step), read once when the
 * dashboard starts. The page gets a `<base href>` of the dashboard's prefix, so its relative URLs work wherever it is
 * mounted.
 *
 * @internal
 */
import { Effect } from "effect"
import { readFileSync } from "node:fs"

const read = (name: string) => readFileSync(new URL(`../../assets/${name}`, import.meta.url), "utf8")

/** The page, script and style, the page's base set to `prefix`. */
export const assets = (prefix: string) =>
  Effect.sync(() => ({
    page: read("index.html").replace("<base href=\"/\">", `<base href="${prefix}/">`),
    script: read("app.js"),
    style: read("style.css")
  }))
