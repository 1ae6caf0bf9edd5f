import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  isShellCommand,
  makeSentinel,
  matchEnd,
  postScript,
  preScript,
  promptGroup,
  shellQuote,
  typedText,
} from './sentinel.js';

let dir: string;

beforeEach(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'smith-sentinel-')));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const SHELLS = ['sh', 'bash', 'dash'].filter((s) => {
  try {
    execFileSync(s, ['-c', 'true']);
    return true;
  } catch {
    return false;
  }
});

describe('isShellCommand', () => {
  it('knows POSIX-like shells by the program name, and not a shell given a script', () => {
    expect(isShellCommand(['bash'])).toBe(true);
    expect(isShellCommand(['/bin/sh', '-l'])).toBe(true);
    expect(isShellCommand(['zsh', '-i'])).toBe(true);
    expect(isShellCommand(['bash', '-c', 'echo'])).toBe(false);
    expect(isShellCommand(['bash', '-lc', 'echo'])).toBe(false);
    expect(isShellCommand(['python3', '-i'])).toBe(false);
    expect(isShellCommand(['fish'])).toBe(false);
    expect(isShellCommand([])).toBe(false);
  });
});

describe('shellQuote', () => {
  it.each(SHELLS)('round-trips any text through %s', (shell) => {
    const text = `it's "quoted" $HOME \`x\` \\ \n new line; rm -rf /`;
    expect(execFileSync(shell, ['-c', `printf '%s' ${shellQuote(text)}`], { encoding: 'utf8' })).toBe(text);
  });
});

describe('the sentinel files', () => {
  it.each(SHELLS)(
    '%s: pre exports, changes directory and prints the begin marker; post reports the status',
    (shell) => {
      const s = makeSentinel();
      const work = path.join(dir, 'work dir');
      execFileSync('mkdir', [work]);
      const pre = path.join(dir, 'a.pre');
      const post = path.join(dir, 'a.post');
      const status = path.join(dir, 'a.status');
      writeFileSync(
        pre,
        preScript(s, { GREETING: "it's", 'BAD-NAME': 'x', PWD: '/nowhere', UID: '1' }, work),
      );
      // `true` stands in for tmux: the wake-up is tmux's job
      writeFileSync(post, postScript(s, status, '/bin/true', '/nonexistent/socket'));
      const typed = typedText('echo "$GREETING"; pwd; (exit 7)', pre, post);
      const out = execFileSync(shell, ['-c', typed], { encoding: 'utf8', cwd: dir });
      expect(out).toBe(`${s.begin}\nit's\n${work}\n${s.endPrefix}7\n`);
      expect(readFileSync(status, 'utf8')).toBe('7\n');
    },
  );

  it('names the files in what is typed, never a marker', () => {
    const s = makeSentinel();
    const typed = typedText('echo hi', '/d/x.pre', '/d/x.post');
    expect(typed).toBe(`. '/d/x.pre' && { echo hi\n}; . '/d/x.post'`);
    for (const secret of [s.begin, s.endPrefix, s.channel]) expect(typed).not.toContain(secret);
    const other = makeSentinel();
    expect(other.begin).not.toBe(s.begin);
    expect(other.endPrefix).not.toBe(s.endPrefix);
  });

  it.each(SHELLS)(
    '%s: the prompt group survives a trailing comment, a heredoc and an empty prompt',
    (shell) => {
      for (const prompt of ['echo a # comment', "cat <<'EOF'\nx\nEOF\n", '', '\r\n', 'echo b\r\n']) {
        expect(() => execFileSync(shell, ['-n', '-c', `${promptGroup(prompt)}; echo done`])).not.toThrow();
      }
      expect(
        execFileSync(shell, ['-c', `${promptGroup('echo a # c')}; echo done`], { encoding: 'utf8' }),
      ).toBe('a\ndone\n');
    },
  );
});

describe('matchEnd', () => {
  it('finds the marker at the end of a line, after text printed without a newline', () => {
    expect(matchEnd('smith:end:abc:0', 'smith:end:abc:')).toEqual({ before: '', status: 0 });
    expect(matchEnd('partialsmith:end:abc:127', 'smith:end:abc:')).toEqual({
      before: 'partial',
      status: 127,
    });
  });

  it('ignores other tokens and text after the status', () => {
    expect(matchEnd('smith:end:xyz:0', 'smith:end:abc:')).toBeNull();
    expect(matchEnd('smith:end:abc:0 more', 'smith:end:abc:')).toBeNull();
    expect(matchEnd('smith:end:abc:', 'smith:end:abc:')).toBeNull();
  });
});
