/**
 * Directory listings for static files (Twisted's `DirectoryLister`): reading
 * a directory's entries with their kinds and sizes, and rendering them as an
 * HTML page (directories first, each group sorted by name; names
 * HTML-escaped in text and percent-encoded in links).
 *
 * @module
 */

import type { Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeHTML } from './errors.js';
import { isWithin } from './static-paths.js';

/** One entry of a listing. */
export interface ListingEntry {
  /** The entry's name in the directory (as Node decodes it: UTF-8). */
  readonly name: string;
  readonly isDirectory: boolean;
  /** Size in bytes (0 for directories). */
  readonly size: number;
  /** The Content-Type the file would be served with (`''` for directories). */
  readonly type: string;
}

/** What {@link readListing} needs to know about the site. */
export interface ListingOptions {
  /** Follow symlinks whose target lies outside `rootReal` (otherwise they are left out). */
  readonly followSymlinks: boolean;
  /** The real path of the served root. */
  readonly rootReal: string;
  /** The Content-Type of a file by its name. */
  typeOf(name: string): string;
}

// stat() calls in flight at once: a directory of 100,000 entries must not
// queue 100,000 requests on the libuv thread pool (and hold their promises).
const STAT_BATCH = 32;

/**
 * The servable entries of the directory `dir`: regular files and
 * directories, symlinks resolved to what they point at. Left out: entries
 * that vanish or cannot be stat'ed while listing, FIFOs, sockets and devices
 * (never served), broken symlinks, and (unless `followSymlinks`) symlinks
 * whose real path leaves the root. Names that are not valid UTF-8 are listed
 * as Node decodes them (with U+FFFD) and cannot be fetched. Sorted:
 * directories first, then files, each by name in code unit order.
 *
 * @throws (rejects with) the `readdir` error (ENOENT, ENOTDIR, EACCES…).
 */
export async function readListing(dir: string, options: ListingOptions): Promise<ListingEntry[]> {
  const dirents = await readdir(dir, { withFileTypes: true });
  const entries: ListingEntry[] = [];
  for (let i = 0; i < dirents.length; i += STAT_BATCH) {
    const batch = dirents.slice(i, i + STAT_BATCH);
    const found = await Promise.all(batch.map((d) => describe(dir, d, options)));
    for (const entry of found) if (entry !== null) entries.push(entry);
  }
  entries.sort(compareEntries);
  return entries;
}

async function describe(
  dir: string,
  dirent: Dirent,
  options: ListingOptions,
): Promise<ListingEntry | null> {
  const name = dirent.name;
  if (dirent.isDirectory()) return { name, isDirectory: true, size: 0, type: '' };
  if (!dirent.isFile() && !dirent.isSymbolicLink()) return null;
  const path = join(dir, name);
  try {
    if (dirent.isSymbolicLink() && !options.followSymlinks) {
      if (!isWithin(await realpath(path), options.rootReal)) return null;
    }
    const st = await stat(path);
    if (st.isDirectory()) return { name, isDirectory: true, size: 0, type: '' };
    if (!st.isFile()) return null;
    return { name, isDirectory: false, size: st.size, type: options.typeOf(name) };
  } catch {
    // Gone, a broken link, or not ours to look at: not listed.
    return null;
  }
}

function compareEntries(a: ListingEntry, b: ListingEntry): number {
  if (a.isDirectory !== b.isDirectory) return a.isDirectory ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** `size` bytes for people: `512B`, `12K`, `3M`, `1G` (Twisted's `formatFileSize`, rounded down). */
export function formatFileSize(size: number): string {
  if (size < 1024) return `${size}B`;
  if (size < 1024 ** 2) return `${Math.floor(size / 1024)}K`;
  if (size < 1024 ** 3) return `${Math.floor(size / 1024 ** 2)}M`;
  return `${Math.floor(size / 1024 ** 3)}G`;
}

/**
 * The listing page for the URL path `urlPath` (percent-encoded as
 * requested; shown decoded and escaped) as UTF-8 bytes. Links are relative
 * to the directory (its URL ends with `/`): each name percent-encoded with
 * `encodeURIComponent` (so `:`, `?`, `#` and `%` in names stay in the path),
 * directories with a trailing `/`. `withParent` adds a `../` row.
 */
export function renderListing(
  urlPath: string,
  entries: readonly ListingEntry[],
  withParent: boolean,
): Buffer {
  let shown: string;
  try {
    shown = decodeURIComponent(urlPath);
  } catch {
    shown = urlPath;
  }
  const title = `Directory listing for ${escapeHTML(shown)}`;
  const rows: string[] = [];
  if (withParent) {
    rows.push('<tr class="dir"><td><a href="../">../</a></td><td></td><td>[Directory]</td></tr>');
  }
  for (const e of entries) {
    const href = encodeURIComponent(e.name);
    const text = escapeHTML(e.name);
    rows.push(
      e.isDirectory
        ? `<tr class="dir"><td><a href="${href}/">${text}/</a></td><td></td><td>[Directory]</td></tr>`
        : `<tr class="file"><td><a href="${href}">${text}</a></td>` +
            `<td title="${e.size} bytes">${formatFileSize(e.size)}</td>` +
            `<td>${escapeHTML(e.type)}</td></tr>`,
    );
  }
  return Buffer.from(
    `<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>${title}</title>
<style>
body { font-family: sans-serif; margin: 1em 2em; }
table { border-collapse: collapse; }
td, th { padding: 0.2em 1em; text-align: left; }
tr.dir a { font-weight: bold; }
</style>
</head>
<body>
<h1>${title}</h1>
<table>
<thead><tr><th>Name</th><th>Size</th><th>Type</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
</body>
</html>
`,
    'utf8',
  );
}
