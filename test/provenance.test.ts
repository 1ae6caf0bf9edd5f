/**
 * Signed provenance end to end, on a real SQLite store and a real git repository: key files,
 * checkpoints, verdict signatures, tampering with the database file (better-sqlite3 directly),
 * JSONL export verified offline, and verdict notes on commits.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  createReadStream,
  createWriteStream,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import { calculateJwkThumbprint } from 'jose';
import { auditHash, GENESIS_HASH } from '../src/core/canonical-json.js';
import type { AuditRecord, Json } from '../src/core/types.js';
import {
  addNote,
  CHECKPOINT_ACTION,
  Checkpointer,
  checkpointOps,
  createKeyPair,
  exportAudit,
  loadPublicKey,
  loadSigningKey,
  ProvenanceError,
  readNote,
  signJson,
  VERDICT_JWS_TYPE,
  verdictAuditOp,
  verifyAuditChain,
  verifyExport,
  verifyNote,
} from '../src/provenance/index.js';
import type { PublicKey, SigningKey } from '../src/provenance/index.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { SqliteStore } from '../src/store/sqlite/sqlite-store.js';

let tmp: string;
let dbFile: string;
let store: SqliteStore;
let key: SigningKey;
let pub: PublicKey;

beforeEach(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'smith-provenance-'));
  dbFile = join(tmp, 'smith.db');
  store = await openSqliteStore(dbFile);
  await createKeyPair(join(tmp, 'keys'));
  key = await loadSigningKey(join(tmp, 'keys'));
  pub = await loadPublicKey(join(tmp, 'keys', 'public.jwk'));
});

afterEach(async () => {
  await store.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** A second key pair, as someone else would make. */
async function otherKey(): Promise<SigningKey> {
  const dir = join(tmp, `other-${Math.random().toString(36).slice(2)}`);
  await createKeyPair(dir);
  return loadSigningKey(dir);
}

/**
 * Write `n` ordinary records with signed verdicts at the given positions, checkpointing every
 * `every` records, and a final checkpoint (as at shutdown).
 */
async function buildChain(n = 25, every = 10, verdictAt: number[] = [5, 17]): Promise<AuditRecord[]> {
  const cp = new Checkpointer({ store, key, every });
  for (let i = 1; i <= n; i++) {
    if (verdictAt.includes(i)) {
      await store.commit([
        await verdictAuditOp(
          {
            subject: `task-${i}`,
            verdict: { judge: 'quality', decision: 'approve', confidence: 0.9, reasons: ['ok'] },
          },
          key,
        ),
      ]);
    } else {
      await store.commit([
        {
          op: 'audit',
          actor: 'engine',
          action: 'task.queued',
          subject: `task-${i}`,
          data: { i, note: 'queued' },
        },
      ]);
    }
    await cp.maybeCheckpoint();
  }
  await cp.checkpointNow();
  return store.auditRecords(1, 10_000);
}

/** Close the store, change the SQLite file directly, open it again. */
async function tamper(fn: (db: Database.Database) => void): Promise<void> {
  await store.close();
  const db = new Database(dbFile);
  try {
    db.transaction(() => fn(db))();
  } finally {
    db.close();
  }
  store = await openSqliteStore(dbFile);
}

/** Recompute prev_hash and hash from `fromSeq` on, as someone hiding an edit would. */
function rechain(db: Database.Database, fromSeq: number): void {
  type Row = { seq: number; time: number; actor: string; action: string; subject: string; data: string };
  const rows = db.prepare('SELECT * FROM audit_records WHERE seq >= ? ORDER BY seq').all(fromSeq) as Row[];
  let prev =
    fromSeq === 1
      ? GENESIS_HASH
      : (db.prepare('SELECT hash FROM audit_records WHERE seq = ?').get(fromSeq - 1) as { hash: string })
          .hash;
  const update = db.prepare('UPDATE audit_records SET prev_hash = ?, hash = ? WHERE seq = ?');
  for (const r of rows) {
    const hash = auditHash({
      seq: r.seq,
      time: Number(r.time),
      actor: r.actor,
      action: r.action,
      subject: r.subject,
      data: JSON.parse(r.data) as Json,
      prev_hash: prev,
    });
    update.run(prev, hash, r.seq);
    prev = hash;
  }
}

function setData(db: Database.Database, seq: number, data: Json): void {
  db.prepare('UPDATE audit_records SET data = ? WHERE seq = ?').run(JSON.stringify(data), seq);
}

function dataAt(db: Database.Database, seq: number): Record<string, Json> {
  return JSON.parse(
    (db.prepare('SELECT data FROM audit_records WHERE seq = ?').get(seq) as { data: string }).data,
  );
}

function seqsOf(records: AuditRecord[], action: string): number[] {
  return records.filter((r) => r.action === action).map((r) => r.seq);
}

describe('keys', () => {
  it('writes private.jwk with mode 0600 and public.jwk whose kid is the RFC 7638 thumbprint', async () => {
    const dir = join(tmp, 'k2');
    const made = await createKeyPair(dir);
    expect(statSync(made.privateFile).mode & 0o777).toBe(0o600);
    const pubJwk = JSON.parse(readFileSync(made.publicFile, 'utf8')) as Record<string, string>;
    expect(pubJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid: made.kid });
    expect(pubJwk.d).toBeUndefined();
    expect(made.kid).toBe(await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: pubJwk.x! }));
    expect((await loadSigningKey(dir)).kid).toBe(made.kid);
    expect((await loadPublicKey(made.publicFile)).kid).toBe(made.kid);
    // a second key pair over the first is refused: records signed with it would no longer verify
    await expect(createKeyPair(dir)).rejects.toMatchObject({ kind: 'key-exists' });
  });

  it('refuses a private key readable by others, naming the chmod command', async () => {
    const dir = join(tmp, 'keys');
    const file = join(dir, 'private.jwk');
    chmodSync(file, 0o644);
    const err = await loadSigningKey(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProvenanceError);
    expect(err).toMatchObject({ kind: 'key-insecure', code: 'CONFIG_INVALID' });
    expect((err as Error).message).toContain(`chmod 600 ${file}`);
    expect((err as Error).message).toContain('0644');
  });

  it('names the missing key file', async () => {
    const err = await loadSigningKey(join(tmp, 'nowhere')).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'key-not-found', code: 'CONFIG_NOT_FOUND' });
    expect((err as Error).message).toContain(join(tmp, 'nowhere', 'private.jwk'));
  });

  it('refuses a public.jwk whose kid was edited', async () => {
    const file = join(tmp, 'keys', 'public.jwk');
    const jwk = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    writeFileSync(file, JSON.stringify({ ...jwk, kid: 'someone-else' }));
    await expect(loadPublicKey(file)).rejects.toMatchObject({ kind: 'key-invalid' });
  });
});

describe('checkpoints and signatures', () => {
  it('checkpoints every N records; the chain verifies with the public key and counts them', async () => {
    const records = await buildChain(35, 10, [5, 17]);
    const cps = records.filter((r) => r.action === CHECKPOINT_ACTION);
    // 10 records, a checkpoint (11); 10 more (12..21), a checkpoint (22); … and one at shutdown
    expect(cps.map((r) => r.seq)).toEqual([11, 22, 33, 39]);
    expect(cps.map((r) => (r.data as { head_seq: number }).head_seq)).toEqual([10, 21, 32, 38]);
    expect(cps.every((r) => r.actor === 'engine' && r.subject === 'audit')).toBe(true);
    expect((cps[0]!.data as { kid: string }).kid).toBe(key.kid);

    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v).toMatchObject({ ok: true, checked: 39, checkpoints: 4, signatures: 2 });
    expect(v.lastCheckpoint).toMatchObject({ seq: 39, headSeq: 38, kid: key.kid });
    // without the key: the hash chain only
    expect(await verifyAuditChain(store)).toMatchObject({
      ok: true,
      checked: 39,
      checkpoints: 0,
      signatures: 0,
    });

    // a restarted engine finds the last checkpoint and does not write another for nothing
    const again = new Checkpointer({ store, key, every: 10 });
    expect(await again.maybeCheckpoint()).toBeUndefined();
    expect(await again.checkpointNow()).toBeUndefined();
    expect(again.lastCheckpointSeq).toBe(39);
  });

  it('a checkpoint committed while other records land still signs a real head', async () => {
    await buildChain(3, 100, []);
    const head = await store.auditHead();
    const ops = await checkpointOps(head, key);
    await store.commit([{ op: 'audit', actor: 'engine', action: 'task.queued', subject: 'late', data: {} }]);
    await store.commit(ops);
    expect(await verifyAuditChain(store, undefined, { publicKey: pub })).toMatchObject({
      ok: true,
      checkpoints: 2,
    });
  });
});

describe('tampering is found and named by seq', () => {
  it('a record whose data was edited', async () => {
    await buildChain();
    await tamper((db) => setData(db, 7, { i: 7, note: 'edited' }));
    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v.ok).toBe(false);
    expect(v.broken).toMatchObject({ seq: 7 });
    expect(v.broken!.reason).toMatch(/hash mismatch/);
  });

  it('an edited record with every later hash recomputed fails at the checkpoint that signed it', async () => {
    const records = await buildChain();
    const firstCp = seqsOf(records, CHECKPOINT_ACTION)[0]!;
    await tamper((db) => {
      setData(db, 7, { i: 7, note: 'edited' });
      rechain(db, 7);
    });
    // the hash chain alone cannot tell
    expect((await verifyAuditChain(store)).ok).toBe(true);
    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v.ok).toBe(false);
    expect(v.broken!.seq).toBe(firstCp);
    expect(v.broken!.reason).toMatch(new RegExp(`^checkpoint at seq ${firstCp}: signed head 10 has hash`));
    expect(v.broken!.reason).toMatch(/rewritten/);
  });

  it('a deleted record', async () => {
    await buildChain();
    await tamper((db) => db.prepare('DELETE FROM audit_records WHERE seq = 8').run());
    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v.broken).toMatchObject({ seq: 8 });
    expect(v.broken!.reason).toMatch(/record 8 is missing/);
  });

  it('a deleted record with the rest renumbered and rehashed fails at the next checkpoint', async () => {
    const records = await buildChain();
    const last = records.length;
    await tamper((db) => {
      db.prepare('DELETE FROM audit_records WHERE seq = 8').run();
      const move = db.prepare('UPDATE audit_records SET seq = ? WHERE seq = ?');
      for (let s = 9; s <= last; s++) move.run(s - 1, s);
      rechain(db, 8);
    });
    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v.ok).toBe(false);
    // the first checkpoint (seq 11) moved to 10 and now signs a head that is no longer before it
    expect(v.broken!.seq).toBe(10);
    expect(v.broken!.reason).toMatch(/^checkpoint at seq 10:/);
  });

  it("a checkpoint's data edited", async () => {
    const records = await buildChain();
    const cp = seqsOf(records, CHECKPOINT_ACTION)[1]!;
    await tamper((db) => {
      const d = dataAt(db, cp);
      setData(db, cp, { ...d, head_hash: 'f'.repeat(64) });
      rechain(db, cp);
    });
    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v.broken!.seq).toBe(cp);
    expect(v.broken!.reason).toMatch(
      new RegExp(`^checkpoint at seq ${cp}: its data .* differs from the signed head`),
    );
  });

  it('a rewritten chain re-signed with another key names that key', async () => {
    const records = await buildChain();
    const cp = seqsOf(records, CHECKPOINT_ACTION)[0]!;
    const mallory = await otherKey();
    // rewrite record 3, rehash, and sign the new head with Mallory's key in place of the checkpoint
    await store.close();
    let db = new Database(dbFile);
    setData(db, 3, { i: 3, note: 'edited' });
    rechain(db, 3);
    const head = db.prepare('SELECT hash FROM audit_records WHERE seq = ?').get(cp - 1) as { hash: string };
    db.close();
    const [op] = await checkpointOps({ seq: cp - 1, hash: head.hash }, mallory, 1);
    db = new Database(dbFile);
    setData(db, cp, (op as { data: Json }).data);
    rechain(db, cp);
    db.close();
    store = await openSqliteStore(dbFile);

    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v.broken!.seq).toBe(cp);
    expect(v.broken!.reason).toContain(
      `checkpoint at seq ${cp}: signed with key ${mallory.kid}, not with the given key ${key.kid}`,
    );
  });

  it("a checkpoint signed by another key under this key's kid does not verify", async () => {
    const records = await buildChain();
    const cp = seqsOf(records, CHECKPOINT_ACTION)[0]!;
    const mallory = await otherKey();
    const forged: SigningKey = { ...mallory, kid: key.kid };
    const head = records[cp - 2]!;
    const [op] = await checkpointOps({ seq: head.seq, hash: head.hash }, forged, 1);
    await tamper((db) => {
      setData(db, cp, (op as { data: Json }).data);
      rechain(db, cp);
    });
    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v.broken).toEqual({
      seq: cp,
      reason: `checkpoint at seq ${cp}: signature does not verify with key ${key.kid}`,
    });
  });

  it('a verdict edited after it was signed', async () => {
    const records = await buildChain();
    const verdict = seqsOf(records, 'task.verdict')[1]!;
    await tamper((db) => {
      const d = dataAt(db, verdict);
      setData(db, verdict, { ...d, verdict: { ...(d.verdict as Record<string, Json>), decision: 'reject' } });
      rechain(db, verdict);
    });
    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v.broken!.seq).toBe(verdict);
    expect(v.broken!.reason).toBe(
      `verdict at seq ${verdict}: the recorded verdict differs from the signed one: the verdict was edited`,
    );
  });

  it('a verdict signed by another key', async () => {
    await buildChain(4, 100, []);
    const mallory = await otherKey();
    const { seq } = (
      await store.commit([
        await verdictAuditOp({ subject: 'task-x', verdict: { decision: 'approve' } }, mallory),
      ])
    ).audit[0]!;
    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v.broken!.seq).toBe(seq);
    expect(v.broken!.reason).toMatch(new RegExp(`^verdict at seq ${seq}: signed with key ${mallory.kid}`));
  });

  it('a verdict record without a signature', async () => {
    await store.commit([
      {
        op: 'audit',
        actor: 'council',
        action: 'council.verdict',
        subject: 'wf-1',
        data: { verdict: { ok: true } },
      },
    ]);
    const v = await verifyAuditChain(store, undefined, { publicKey: pub });
    expect(v.broken).toEqual({
      seq: 1,
      reason: 'verdict at seq 1: the verdict is not signed (no data.verdict_jws)',
    });
  });

  it('verifying with the wrong public key fails naming both kids', async () => {
    await buildChain();
    const wrong = (await otherKey()).publicKey;
    const v = await verifyAuditChain(store, undefined, { publicKey: wrong });
    expect(v.ok).toBe(false);
    // the first signed record is the verdict at seq 5
    expect(v.broken!.seq).toBe(5);
    expect(v.broken!.reason).toContain(`signed with key ${key.kid}, not with the given key ${wrong.kid}`);
    // after a rotation both keys are given, and it verifies
    expect((await verifyAuditChain(store, undefined, { publicKey: [wrong, pub] })).ok).toBe(true);
  });
});

describe('export', () => {
  async function exportTo(file: string): Promise<void> {
    const out = createWriteStream(file);
    await exportAudit(store, out);
    out.end();
    await finished(out);
  }

  it('round trip: an exported chain verifies offline with the public key alone', async () => {
    await buildChain(35, 10, [5, 17]);
    const file = join(tmp, 'audit.jsonl');
    await exportTo(file);
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(JSON.parse(lines[0]!)).toEqual(
      expect.objectContaining({ seq: 1, actor: 'engine', action: 'task.queued', prev_hash: GENESIS_HASH }),
    );
    expect(Object.keys(JSON.parse(lines[0]!) as object)).toEqual([
      'seq',
      'time',
      'actor',
      'action',
      'subject',
      'data',
      'prev_hash',
      'hash',
    ]);
    await store.close();
    rmSync(dbFile); // offline: no store any more
    store = await openSqliteStore(join(tmp, 'unused.db'));
    const v = await verifyExport(createInterface({ input: createReadStream(file) }), pub);
    expect(v).toMatchObject({ ok: true, checked: 39, checkpoints: 4, signatures: 2 });
  });

  it('a tampered line in the export fails, naming seq and line', async () => {
    await buildChain();
    const file = join(tmp, 'audit.jsonl');
    await exportTo(file);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const edited = lines.map((l) => {
      const r = JSON.parse(l) as { seq: number; data: Record<string, Json> };
      return r.seq === 12 ? JSON.stringify({ ...r, data: { ...r.data, note: 'edited' } }) : l;
    });
    const v = await verifyExport(edited, pub);
    expect(v.broken).toMatchObject({ seq: 12 });
    expect(v.broken!.reason).toMatch(/hash mismatch.*\(line 12\)$/);

    expect((await verifyExport([...lines.slice(0, 3), 'not json'], pub)).broken).toEqual({
      seq: 4,
      reason: 'line 4 is not JSON',
    });
    // a line removed
    expect((await verifyExport([...lines.slice(0, 3), ...lines.slice(4)], pub)).broken!.reason).toMatch(
      /record 4 is missing/,
    );
  });
});

describe('git notes', () => {
  let repo: string;
  const git = (...args: string[]): string =>
    execFileSync('git', ['-C', repo, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();

  beforeEach(() => {
    repo = join(tmp, 'repo');
    execFileSync('git', ['init', '-q', repo]);
    git('config', 'user.name', 'Test');
    git('config', 'user.email', 'test@example.com');
    writeFileSync(join(repo, 'a.txt'), 'one\n');
    git('add', 'a.txt');
    git('commit', '-q', '-m', 'first');
  });

  it('adds, reads and verifies a verdict note on a commit; an edited note fails', async () => {
    const sha = git('rev-parse', 'HEAD');
    const jws = await signJson({ commit: sha, decision: 'approve', task: 't-1' }, key, VERDICT_JWS_TYPE);
    await addNote(repo, 'HEAD', jws);
    expect(await readNote(repo, sha)).toBe(jws);
    // git itself shows it
    expect(git('notes', '--ref', 'refs/notes/smith', 'show', sha)).toBe(jws);
    expect(await verifyNote(repo, sha, pub)).toEqual({
      ok: true,
      commit: sha,
      kid: key.kid,
      payload: { commit: sha, decision: 'approve', task: 't-1' },
    });

    // someone edits the note's payload to reject → approve swap
    const [h, , s] = jws.split('.');
    const forgedPayload = Buffer.from(
      JSON.stringify({ commit: sha, decision: 'reject', task: 't-1' }),
    ).toString('base64url');
    git('notes', '--ref', 'refs/notes/smith', 'add', '-f', '-m', `${h}.${forgedPayload}.${s}`, sha);
    const bad = await verifyNote(repo, sha, pub);
    expect(bad.ok).toBe(false);
    expect(bad).toMatchObject({
      reason: `the note on ${sha}: signature does not verify with key ${key.kid}`,
    });
  });

  it('a note copied to another commit, a commit without a note, and a missing commit', async () => {
    const first = git('rev-parse', 'HEAD');
    const jws = await signJson({ commit: first, decision: 'approve' }, key, VERDICT_JWS_TYPE);
    writeFileSync(join(repo, 'a.txt'), 'two\n');
    git('commit', '-q', '-am', 'second');
    const second = git('rev-parse', 'HEAD');
    expect(await readNote(repo, second)).toBeUndefined();
    expect(await verifyNote(repo, second, pub)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/has no note/),
    });
    await addNote(repo, second, jws);
    expect(await verifyNote(repo, second, pub)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/copied/),
    });
    await expect(readNote(repo, 'no-such-ref')).rejects.toMatchObject({ kind: 'git-failed' });
  });

  it('writes the note in a repository with no git identity configured', async () => {
    const bare = join(tmp, 'anon');
    const env = { ...process.env, GIT_CONFIG_GLOBAL: join(tmp, 'no-gitconfig'), GIT_CONFIG_NOSYSTEM: '1' };
    const run = (...args: string[]): string =>
      execFileSync('git', ['-C', bare, ...args], {
        encoding: 'utf8',
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      }).trim();
    execFileSync('git', ['init', '-q', bare], { env });
    writeFileSync(join(bare, 'a.txt'), 'one\n');
    run('add', 'a.txt');
    run('-c', 'user.name=T', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', 'first');
    const saved = { g: process.env.GIT_CONFIG_GLOBAL, s: process.env.GIT_CONFIG_NOSYSTEM };
    process.env.GIT_CONFIG_GLOBAL = env.GIT_CONFIG_GLOBAL;
    process.env.GIT_CONFIG_NOSYSTEM = '1';
    try {
      const jws = await signJson({ decision: 'approve' }, key, VERDICT_JWS_TYPE);
      await addNote(bare, 'HEAD', jws);
      expect(await verifyNote(bare, 'HEAD', pub)).toMatchObject({ ok: true, kid: key.kid });
    } finally {
      if (saved.g === undefined) delete process.env.GIT_CONFIG_GLOBAL;
      else process.env.GIT_CONFIG_GLOBAL = saved.g;
      if (saved.s === undefined) delete process.env.GIT_CONFIG_NOSYSTEM;
      else process.env.GIT_CONFIG_NOSYSTEM = saved.s;
    }
  });
});
