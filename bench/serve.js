/**
 * Starts the real `smith serve` for the server benchmarks (bench/server.js, bench/sse.js): a
 * fresh home under `dir` with the given smith.yaml lines (the rate limit is lifted), port 0, logs
 * at warn.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/smith.js', import.meta.url));

/**
 * Start `smith serve` in `dir`.
 * @param {string} dir - an empty directory (its smith.yaml and .smith home are written there)
 * @param {string[]} yaml - smith.yaml lines (agents, store); `server: rate_limit` is added
 * @returns {Promise<{url: string, token: string, stop: () => Promise<void>}>} its URL, the admin
 *   key it printed, and a stop (SIGTERM, then wait for the exit)
 */
export async function serve(dir, yaml) {
  writeFileSync(join(dir, 'smith.yaml'), [...yaml, 'server:', '  rate_limit: 100000000', ''].join('\n'));
  const child = spawn(
    process.execPath,
    [BIN, '--home', join(dir, '.smith'), 'serve', '--port', '0', '--json'],
    {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SMITH_LOG_LEVEL: 'warn' },
    },
  );
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const deadline = Date.now() + 30_000;
  while (!out.includes('\n')) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`smith serve did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = JSON.parse(out.split('\n')[0]).url;
  const token = /smk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/.exec(err)[0];
  return {
    url,
    token,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    },
  };
}
