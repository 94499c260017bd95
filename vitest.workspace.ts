import type { TestProjectConfiguration } from "vitest/config"

/** One vitest project per package; `vitest.config.ts` imports this list (vitest 5 ignores this file on its own). */
const pkg = (name: string): TestProjectConfiguration => ({
  extends: true,
  test: { name, root: `./packages/${name}`, include: ["test/**/*.test.ts"] }
})

export const projects: Array<TestProjectConfiguration> = [
  pkg("core"),
  pkg("memory"),
  // redis: a globalSetup starts a private redis-server (or uses REDIS_URL) and provides its URL to the tests
  {
    extends: true,
    test: {
      name: "redis",
      root: "./packages/redis",
      include: ["test/**/*.test.ts"],
      globalSetup: ["./test/utils/globalSetup.ts"],
      // real servers on a 2-core machine: a loaded moment must not fail a test that takes ~1 s when idle
      testTimeout: 20_000
    }
  },
  // examples: the end-to-end test runs the web service and `errand worker` as processes on a private redis-server (the
  // redis project's globalSetup) and a scratch PostgreSQL database
  {
    extends: true,
    test: {
      name: "examples",
      root: "./packages/examples",
      include: ["test/**/*.test.ts"],
      globalSetup: ["../redis/test/utils/globalSetup.ts"],
      // a real database, SMTP and HTTP server on a loaded 2-core machine
      testTimeout: 60_000
    }
  },
  // cli: real `errand` processes against a private redis-server (the redis project's globalSetup)
  {
    extends: true,
    test: {
      name: "cli",
      root: "./packages/cli",
      include: ["test/**/*.test.ts"],
      globalSetup: ["../redis/test/utils/globalSetup.ts"],
      // child processes on a loaded 2-core machine: each start takes seconds
      testTimeout: 60_000
    }
  },
  pkg("bench"),
  // dashboard: API tests, a 100k-message queue on a private redis-server (the redis project's globalSetup), and the
  // page in headless Chromium against a real worker
  {
    extends: true,
    test: {
      name: "dashboard",
      root: "./packages/dashboard",
      include: ["test/**/*.test.ts"],
      globalSetup: ["../redis/test/utils/globalSetup.ts"],
      // a browser and real servers on a loaded 2-core machine
      testTimeout: 120_000
    }
  },
  // the published packages: build, pnpm pack, npm install into a temp project, compile and run the README quickstart.
  // groupOrder 1: a group of its own (vitest runs groups one after another), so its npm and tsc processes never run
  // alongside other projects' timed tests
  {
    extends: true,
    test: {
      name: "package",
      root: "./test",
      include: ["**/*.test.ts"],
      sequence: { groupOrder: 1 },
      testTimeout: 120_000 // npm, tsc and two Node runs on a loaded 2-core machine; ~1 s each when idle
    }
  }
]
export default projects
