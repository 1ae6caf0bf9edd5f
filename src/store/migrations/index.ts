/**
 * The numbered migrations, in order. Add a new file `NNNN-name.ts` and list it here; never edit a
 * migration that has shipped.
 */
import type { Migration } from 'kysely';
import * as m0001 from './0001-initial.js';
import * as m0002 from './0002-task-trigger.js';
import * as m0003 from './0003-spend.js';
import * as m0004 from './0004-governance.js';
import * as m0005 from './0005-server.js';
import * as m0006 from './0006-task-end-index.js';

/** Every migration by name; names sort in the order they run. */
export const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': m0001,
  '0002-task-trigger': m0002,
  '0003-spend': m0003,
  '0004-governance': m0004,
  '0005-server': m0005,
  '0006-task-end-index': m0006,
};
