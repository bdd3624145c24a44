/**
 * SQL lives in one room, src/store: a statement written anywhere else in src/ or workflows/
 * fails here. String and template literals are read with the TypeScript parser (comments
 * and identifiers are not SQL) and matched against the statements this project writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config';

/** Keywords that start a statement, or the clauses that only SQL writes, in upper case as the store writes them. */
const SQL_STATEMENT =
  /^\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|WITH|LISTEN|UNLISTEN|NOTIFY|CREATE|DROP|ALTER|TRUNCATE|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT|COPY|VACUUM|ANALYZE)\b|\bSELECT\b[\s\S]*\bFROM\b|\bINSERT INTO\b|\bDELETE FROM\b|\bUPDATE\s+\w+\s+SET\b|\bON CONFLICT\b|\bpg_notify\s*\(/;

/**
 * Files outside src/store allowed to hold SQL, each with why. Empty today: the embedded
 * stack's bootstrap statements (CREATE DATABASE, a readiness SELECT 1) live in infra/,
 * which this test does not scan because it is not application code.
 */
const ALLOWED: Record<string, string> = {};

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** The text of every string and template literal in `file` (a template's parts joined by `${}`). */
function literals(file: string): { line: number; text: string }[] {
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found: { line: number; text: string }[] = [];
  const visit = (node: ts.Node): void => {
    let text: string | undefined;
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) text = node.text;
    else if (ts.isTemplateExpression(node)) text = [node.head.text, ...node.templateSpans.map((s) => s.literal.text)].join('${}');
    if (text !== undefined) found.push({ line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text });
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function sqlIn(files: string[]): string[] {
  return files.flatMap((file) =>
    literals(file)
      .filter((l) => SQL_STATEMENT.test(l.text))
      .map((l) => `${path.relative(projectRoot, file)}:${l.line}: ${l.text.trim().split('\n')[0]}`),
  );
}

const relative = (file: string) => path.relative(projectRoot, file).split(path.sep).join('/');
const storeDir = path.join(projectRoot, 'src', 'store');

describe('SQL stays in src/store', () => {
  it('finds the statements the store writes (the scan is not blind)', () => {
    const inStore = sqlIn(tsFiles(storeDir));
    expect(inStore.some((l) => l.includes('INSERT INTO'))).toBe(true);
    expect(inStore.some((l) => l.includes('SELECT'))).toBe(true);
  });

  it('has no SQL in a .ts file of src/ or workflows/ outside src/store', () => {
    const outside = [...tsFiles(path.join(projectRoot, 'src')), ...tsFiles(path.join(projectRoot, 'workflows'))].filter(
      (file) => !file.startsWith(storeDir + path.sep) && !(relative(file) in ALLOWED),
    );
    expect(sqlIn(outside)).toEqual([]);
  });
});
