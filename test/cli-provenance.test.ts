/**
 * End-to-end: signed provenance through the `smith` command. `smith init` makes the key pair, runs
 * sign the chain with checkpoints, `smith audit verify` checks them with the public key, and
 * `smith audit export` + `smith audit verify --from` verify offline; tampering is named.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairSync, sign } from 'node:crypto';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Sandbox, shAgent } from './fixtures/smith-cli.js';

let box: Sandbox;
beforeEach(() => {
  box = new Sandbox();
});
afterEach(async () => {
  await box.cleanup();
});

describe('signed provenance', () => {
  it('init makes the key; runs are checkpointed; verify, export and offline verify name tampering', async () => {
    const init = await box.run(['init']);
    expect(init.code, init.stderr).toBe(0);
    const priv = join(box.home, 'keys', 'private.jwk');
    const pub = join(box.home, 'keys', 'public.jwk');
    expect(statSync(priv).mode & 0o777).toBe(0o600);
    const kid = (JSON.parse(readFileSync(pub, 'utf8')) as { kid: string }).kid;
    expect(init.stdout).toContain(kid);
    // a second init keeps the key
    expect((await box.run(['init'])).code).toBe(0);
    expect((JSON.parse(readFileSync(pub, 'utf8')) as { kid: string }).kid).toBe(kid);

    box.write(
      'wf.yaml',
      [
        'name: signed',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  a:',
        '    agent: sh',
        '    prompt: echo a',
        '',
      ].join('\n'),
    );
    expect((await box.run(['run', 'wf.yaml'])).code).toBe(0);
    const ok = await box.run(['audit', 'verify']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`signatures verified with key ${kid}: 1 checkpoint\\(s\\)`));

    // export and verify offline, with the key given explicitly
    const exported = await box.run(['audit', 'export', '--out', 'audit.jsonl', '--key-out', 'key.jwk']);
    expect(exported.code, exported.stderr).toBe(0);
    const offline = await box.run(['audit', 'verify', '--from', 'audit.jsonl', '--key', 'key.jwk']);
    expect(offline.code, offline.stdout + offline.stderr).toBe(0);
    expect(offline.stdout).toMatch(/1 checkpoint/);

    // an edited line of the export is named
    const lines = readFileSync(join(box.dir, 'audit.jsonl'), 'utf8').trim().split('\n');
    const second = JSON.parse(lines[1]!) as { data: Record<string, unknown> };
    second.data = { ...second.data, forged: true };
    lines[1] = JSON.stringify(second);
    writeFileSync(join(box.dir, 'bad.jsonl'), lines.join('\n') + '\n');
    const bad = await box.run(['audit', 'verify', '--from', 'bad.jsonl', '--key', 'key.jwk']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/BROKEN at record 2\b/);

    // a checkpoint re-signed with another key fails with the home's key, naming the checkpoint
    const db = new Database(join(box.home, 'smith.db'));
    const cp = db.prepare("SELECT seq, data FROM audit_records WHERE action = 'audit.checkpoint'").get() as {
      seq: number;
      data: string;
    };
    const data = JSON.parse(cp.data) as { jws: string };
    const other = generateKeyPairSync('ed25519');
    const [h, p] = data.jws.split('.');
    const sig = sign(null, Buffer.from(`${h}.${p}`), other.privateKey).toString('base64url');
    data.jws = `${h}.${p}.${sig}`;
    db.prepare('UPDATE audit_records SET data = ? WHERE seq = ?').run(JSON.stringify(data), cp.seq);
    db.close();
    const forged = await box.run(['audit', 'verify']);
    expect(forged.code).toBe(1);
    expect(forged.stdout).toMatch(new RegExp(`record ${cp.seq}\\b`));
  });

  it('refuses a private key that others can read, naming the chmod that fixes it', async () => {
    expect((await box.run(['init'])).code).toBe(0);
    const priv = join(box.home, 'keys', 'private.jwk');
    const { chmodSync } = await import('node:fs');
    chmodSync(priv, 0o644);
    box.write(
      'wf.yaml',
      [
        'name: w',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  a:',
        '    agent: sh',
        '    prompt: echo a',
        '',
      ].join('\n'),
    );
    const r = await box.run(['run', 'wf.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`chmod 600 ${priv}`);
  });
});
