/** Aligned text columns for the CLI's tables; the last column may run as long as it needs. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string[] {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  return [header, ...rows].map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** A cell for any value: strings as they are, everything else as compact JSON, cut at `width`. */
export function cell(value: unknown, width = 80): string {
  const text =
    typeof value === 'string'
      ? value
      : typeof value === 'bigint'
        ? value.toString()
        : (JSON.stringify(value, (_key, inner: unknown) =>
            typeof inner === 'bigint' ? inner.toString() : inner,
          ) ?? String(value));
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat;
}
