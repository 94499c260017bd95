/**
 * The shop's catalog: the products `web.ts` makes sure exist when it starts, so a fresh database can take orders
 * (`POST /orders` names products by SKU). Adding them is idempotent: a product whose SKU exists is left as it is
 * (its stock too), so any number of web processes may start at once, and restarts change nothing.
 */
import { Array as Arr, Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { DatabaseError } from "../domain.ts"
import type { NewProduct } from "../services/Orders.ts"
import { dbError } from "../services/sql.ts"

/** The example shop's products. */
export const products: Arr.NonEmptyReadonlyArray<NewProduct> = [
  { sku: "MUG", name: "Errand mug", priceCents: 1200, stock: 100 },
  { sku: "TEE", name: "Errand T-shirt", priceCents: 2500, stock: 50 },
  { sku: "POSTER", name: "Dramatiq poster", priceCents: 800, stock: 20 },
  { sku: "LAPTOP", name: "A laptop", priceCents: 149_900, stock: 3 }
]

/** Adds those of `items` whose SKU is not in the database yet (in one statement); returns how many it added. */
export const ensureProducts = (
  items: Arr.NonEmptyReadonlyArray<NewProduct>
): Effect.Effect<number, DatabaseError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql`
      INSERT INTO products ${sql.insert(Arr.map(items, (product) => ({ ...product })))}
      ON CONFLICT (sku) DO NOTHING RETURNING id`.pipe(dbError("catalog.ensure"))
    return rows.length
  })

/** Adds the shop's products whose SKU is not in the database yet; returns how many it added. */
export const ensure: Effect.Effect<number, DatabaseError, SqlClient.SqlClient> = ensureProducts(products)
