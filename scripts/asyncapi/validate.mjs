// Validates AsyncAPI documents with the reference parser: exits non-zero on any error-level
// diagnostic (schema violations, broken $refs, operations naming messages their channel lacks).
// Usage: node validate.mjs FILE...
import { readFile } from 'node:fs/promises';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const parser = new Parser();
let failed = 0;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(file, 'utf8'), {
    source: file,
  });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning);
  for (const d of [...errors, ...warnings]) {
    const where = d.range ? `${d.range.start.line + 1}:${d.range.start.character + 1}` : '-';
    const kind = d.severity === DiagnosticSeverity.Error ? 'error' : 'warning';
    console.log(`${file}:${where}: ${kind} ${d.code}: ${d.message} (${d.path.join('.')})`);
  }
  if (!document || errors.length > 0) {
    failed += 1;
  } else {
    console.log(`${file}: valid AsyncAPI ${document.version()}, ` +
      `${document.channels().length} channel(s), ${document.operations().length} operation(s)`);
  }
}
process.exit(failed === 0 ? 0 : 1);
