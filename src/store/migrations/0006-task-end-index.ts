/**
 * Migration 0006: an index on `tasks(ended_at)`, so SLO evaluation (tasks ended in a recent window)
 * reads only the recent tasks of a large home instead of scanning them all.
 */
import type { Kysely } from 'kysely';

/** Add the index `tasks_ended_at`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('tasks_ended_at').on('tasks').columns(['ended_at']).execute();
}
