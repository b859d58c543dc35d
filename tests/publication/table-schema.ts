// A strict reader of CSV (RFC 4180) and a validator of the Table Schema subset the open data emits (frictionless
// Table Schema v1: string, number, integer, boolean, date; required, enum, pattern; missingValues), written here
// apart from the code that writes the files, so that a file is checked against its schema by other means.

export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [], field = '', i = 0, quoted = false, wasQuoted = false;
  const endField = () => { row.push(field); field = ''; wasQuoted = false; };
  while (i < text.length) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false; i++; continue;
      }
      field += ch; i++; continue;
    }
    if (ch === '"') {
      if (field !== '' || wasQuoted) throw new Error(`a quote inside an unquoted field at ${i}`);
      quoted = true; wasQuoted = true; i++; continue;
    }
    if (ch === ',') { endField(); i++; continue; }
    if (ch === '\r') {
      if (text[i + 1] !== '\n') throw new Error(`a bare CR at ${i}`);
      endField(); rows.push(row); row = []; i += 2; continue;
    }
    if (ch === '\n') throw new Error(`a bare LF at ${i} (RFC 4180 lines end with CRLF)`);
    field += ch; i++;
  }
  if (quoted) throw new Error('an unterminated quoted field');
  if (field !== '' || row.length) { endField(); rows.push(row); }
  return rows;
}

export interface SchemaField {
  name: string; type: string; format?: string;
  constraints?: { required?: boolean; enum?: string[]; pattern?: string };
}
export interface TableSchema { fields: SchemaField[]; missingValues?: string[] }

const TRUE = ['true', 'True', 'TRUE', '1'], FALSE = ['false', 'False', 'FALSE', '0'];

function castError(f: SchemaField, v: string): string | undefined {
  switch (f.type) {
    case 'string': return undefined;
    case 'number': return /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(v) || ['NaN', 'INF', '-INF'].includes(v) ? undefined : 'not a number';
    case 'integer': return /^[-+]?\d+$/.test(v) ? undefined : 'not an integer';
    case 'boolean': return TRUE.includes(v) || FALSE.includes(v) ? undefined : 'not a boolean';
    case 'date': {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(v)) return 'not an ISO 8601 date';
      const d = new Date(`${v}T00:00:00Z`);
      return Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== v ? 'not a calendar date' : undefined;
    }
    default: return `type ${f.type} is outside this validator's subset`;
  }
}

/** Every problem of a CSV text against a Table Schema; none means valid. */
export function validate(text: string, schema: TableSchema): string[] {
  const problems: string[] = [];
  let rows: string[][];
  try { rows = parseCsv(text); } catch (err) { return [(err as Error).message]; }
  const [header, ...data] = rows;
  const names = schema.fields.map((f) => f.name);
  if (!header || header.join(',') !== names.join(',')) return [`header ${header?.join(',')} is not ${names.join(',')}`];
  const missing = new Set(schema.missingValues ?? ['']);
  data.forEach((r, n) => {
    if (r.length !== names.length) { problems.push(`row ${n + 2}: ${r.length} fields for ${names.length}`); return; }
    schema.fields.forEach((f, k) => {
      const v = r[k]!;
      const where = `row ${n + 2}, ${f.name} = ${JSON.stringify(v)}`;
      if (missing.has(v)) { if (f.constraints?.required) problems.push(`${where}: required`); return; }
      const e = castError(f, v);
      if (e) problems.push(`${where}: ${e}`);
      if (f.constraints?.enum && !f.constraints.enum.includes(v)) problems.push(`${where}: not in ${f.constraints.enum.join('|')}`);
      // Table Schema patterns are XML Schema regular expressions: they match the whole value.
      if (f.constraints?.pattern && !new RegExp(`^(?:${f.constraints.pattern})$`, 'u').test(v)) problems.push(`${where}: does not match ${f.constraints.pattern}`);
    });
  });
  return problems;
}

/** The rows as records by header name. */
export function records(text: string): Record<string, string>[] {
  const [header, ...data] = parseCsv(text);
  return data.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i]!])));
}
