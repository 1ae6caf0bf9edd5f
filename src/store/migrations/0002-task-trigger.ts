/**
 * Migration 0002: a task's trigger rule (`all_success` | `all_done`), after Airflow's trigger rules.
 */
import type { Kysely } from 'kysely';
import { sql } from 'kysely';

/** Add `tasks.trigger`, default `all_success`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('tasks')
    .addColumn('trigger', 'text', (c) => c.notNull().defaultTo(sql`'all_success'`))
    .execute();
}
