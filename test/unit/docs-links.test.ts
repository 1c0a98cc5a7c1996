// The repository's documentation stands on its own: every relative link in a tracked Markdown file
// reaches a tracked file inside the repository (and, for `file.md#anchor`, a heading of that file),
// and no tracked file refers to documents kept outside the repository.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');

function gitLsFiles(...patterns: string[]): string[] {
  const out = execFileSync('git', ['ls-files', '-z', '--', ...patterns], { cwd: ROOT, encoding: 'utf8' });
  return out.split('\0').filter(Boolean);
}

const TRACKED = gitLsFiles();
const TRACKED_SET = new Set(TRACKED);
/** Folders that hold at least one tracked file (a link to a folder is fine on GitHub). */
const TRACKED_DIRS = new Set(
  TRACKED.flatMap((file) => {
    const parts = file.split('/');
    return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
  }),
);

/** Tracked and present in the working tree (a file deleted but not yet committed does not count). */
function present(file: string): boolean {
  return existsSync(path.join(ROOT, file));
}

/**
 * Each line outside fenced code blocks, with its number: `raw` as written, `prose` with inline code
 * spans blanked out (a link written inside backticks is an example, not a link).
 */
function proseLines(text: string): { raw: string; prose: string; number: number }[] {
  const result: { raw: string; prose: string; number: number }[] = [];
  let fence: string | undefined;
  text.split(/\r?\n/).forEach((raw, index) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(raw)?.[1];
    if (marker) {
      if (fence === undefined) fence = marker;
      else if (marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      return;
    }
    if (fence !== undefined) return;
    result.push({ raw, prose: raw.replace(/(`+)[^`]*?\1/g, (m) => ' '.repeat(m.length)), number: index + 1 });
  });
  return result;
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function githubSlug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
    .replace(/<[^>]+>/g, '') // inline HTML
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}_ -]/gu, '')
    .replace(/ /g, '-');
}

const HEADING = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/;

/** The anchors of a Markdown file: its headings' slugs (-1, -2... for repeats) and HTML ids. */
function anchorsOf(file: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { raw, prose } of proseLines(readFileSync(path.join(ROOT, file), 'utf8'))) {
    const heading = HEADING.exec(raw);
    if (heading) {
      const slug = githubSlug(heading[1]!);
      const count = seen.get(slug) ?? 0;
      seen.set(slug, count + 1);
      anchors.add(count === 0 ? slug : `${slug}-${count}`);
    }
    for (const m of prose.matchAll(/<a\s[^>]*(?:name|id)="([^"]+)"/gi)) anchors.add(m[1]!);
  }
  return anchors;
}

interface Link {
  target: string;
  line: number;
}

/** Inline links and images `[text](target "title")`, and reference definitions `[id]: target`. */
function linksOf(text: string): Link[] {
  const links: Link[] = [];
  for (const { prose: line, number } of proseLines(text)) {
    for (const m of line.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/g)) {
      links.push({ target: m[1]!.replace(/^<|>$/g, ''), line: number });
    }
    const definition = /^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(line);
    if (definition) links.push({ target: definition[1]!.replace(/^<|>$/g, ''), line: number });
  }
  return links;
}

const SCHEME = /^[a-z][a-z0-9+.-]*:/i;

function checkLink(file: string, link: Link, anchorCache: Map<string, Set<string>>): string | undefined {
  const where = `${file}:${link.line}`;
  const { target } = link;
  if (SCHEME.test(target) || target.startsWith('//')) return undefined; // not a relative link
  const hash = target.indexOf('#');
  const pathPart = decodeURI((hash === -1 ? target : target.slice(0, hash)).split('?')[0]!);
  const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));

  let resolved: string;
  if (pathPart === '') {
    resolved = file; // #anchor in the same file
  } else {
    const absolute = pathPart.startsWith('/') ? path.join(ROOT, pathPart) : path.resolve(ROOT, path.dirname(file), pathPart);
    const relative = path.relative(ROOT, absolute);
    if (relative === '') return undefined; // the repository root
    if (relative.startsWith('..') || path.isAbsolute(relative)) return `${where}: link to ${target} points outside the repository`;
    resolved = relative.split(path.sep).join('/').replace(/\/$/, '');
    const isDir = TRACKED_DIRS.has(resolved) && existsSync(absolute) && statSync(absolute).isDirectory();
    if (!isDir && !(TRACKED_SET.has(resolved) && present(resolved))) {
      return `${where}: link to ${target}: ${resolved} is not a file of the repository`;
    }
    if (isDir) return anchor === undefined ? undefined : `${where}: link to ${target}: an anchor on a folder`;
  }
  if (anchor === undefined || anchor === '' || !resolved.toLowerCase().endsWith('.md')) return undefined;
  let anchors = anchorCache.get(resolved);
  if (!anchors) {
    anchors = anchorsOf(resolved);
    anchorCache.set(resolved, anchors);
  }
  return anchors.has(anchor) ? undefined : `${where}: link to ${target}: ${resolved} has no heading with the anchor #${anchor}`;
}

/** Tracked text files present in the working tree (binary files and the lock file skipped). */
function textFiles(): { file: string; text: string }[] {
  const files: { file: string; text: string }[] = [];
  for (const file of TRACKED) {
    if (path.basename(file) === 'package-lock.json' || !present(file)) continue;
    const absolute = path.join(ROOT, file);
    if (!statSync(absolute).isFile()) continue;
    const buffer = readFileSync(absolute);
    if (buffer.subarray(0, 8000).includes(0)) continue; // binary
    files.push({ file, text: buffer.toString('utf8') });
  }
  return files;
}

/** Every line of every tracked text file matching `pattern`, as "file:line: text". */
function occurrences(pattern: RegExp): string[] {
  const found: string[] = [];
  for (const { file, text } of textFiles()) {
    text.split(/\r?\n/).forEach((line, i) => {
      if (pattern.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  return found;
}

describe('documentation links', () => {
  const markdown = gitLsFiles('*.md').filter(present);

  it('finds the Markdown files to check', () => {
    expect(markdown).toContain('README.md');
  });

  it('has every relative link reach a file of the repository, and every anchor a heading', () => {
    const problems: string[] = [];
    const anchorCache = new Map<string, Set<string>>();
    for (const file of markdown) {
      for (const link of linksOf(readFileSync(path.join(ROOT, file), 'utf8'))) {
        const problem = checkLink(file, link, anchorCache);
        if (problem) problems.push(problem);
      }
    }
    expect(problems).toEqual([]);
  });

  it('computes anchors as GitHub does', () => {
    expect(githubSlug('Error codes')).toBe('error-codes');
    expect(githubSlug('Express 5')).toBe('express-5');
    expect(githubSlug('`GET /health` and friends')).toBe('get-health-and-friends');
    expect(githubSlug('Rotation and reuse detection')).toBe('rotation-and-reuse-detection');
    expect(githubSlug('Signing-key rotation')).toBe('signing-key-rotation');
  });
});

describe('documents outside the repository', () => {
  // Spelled in pieces so that this file does not match itself.
  const outsideFolder = ['..', 'shared'].join('/');

  it(`no tracked file refers to ${outsideFolder}`, () => {
    const escaped = outsideFolder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(occurrences(new RegExp(escaped))).toEqual([]);
  });

  it('no tracked file names a contract or design document the repository does not have', () => {
    // The contract and the design notes live in docs/ (api.md, design.md); an upper-case name is a
    // reference to the old documents outside the repository, unless such a file is tracked.
    const names = ['API', 'DESIGN'].map((n) => `${n}.md`).filter((name) => !TRACKED.some((f) => path.basename(f) === name));
    if (names.length === 0) return;
    const pattern = new RegExp(`(?<![\\w/.-])(?:${names.map((n) => n.replace('.', '\\.')).join('|')})(?![\\w])`);
    expect(occurrences(pattern)).toEqual([]);
  });
});
