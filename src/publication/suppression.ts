// Statistical secrecy for what the city and the public read: INSEE's rules (docs/publication.md cites them). A cell is
// primary-sensitive when fewer than `minGroup` persons make it (11 by default, never less), or when one account makes
// more than 85 % of its value. Secondary suppression then hides more cells until nothing hidden can be worked back
// from what is published: the table is read with its margins as a system of equations (each row and each column sums
// to its total), and
//   1. in every line whose total is published, the hidden cells number 0 or at least 2, and together hold at least
//      `minGroup` persons and no dominating account: the difference "total − published cells" reveals only such a
//      group;
//   2. no hidden cell is determined by the equations taken together: in the graph whose nodes are the lines and whose
//      edges are the hidden cells, a cell is determined exactly when its edge is a bridge, so no hidden edge may be one.
// Cells only ever go from published to hidden, so the loop ends (at worst with everything hidden). Published totals
// are the true sums: nothing is rounded or perturbed, so a reader's own sums of published figures are never wrong,
// only incomplete.
//
// Pure: no database, no clock. `tests/unit/suppression.test.ts` checks the property on generated tables.

/** What a cell is made of: how many persons, its value (a count, bytes, kWh…), and its largest single contribution. */
export interface Cell { persons: number; value: number; top: number }

export interface Rules {
  /** Fewer persons than this in a cell (and more than none) → hidden. INSEE: 11. */
  minGroup: number;
  /** One contributor above this share of a cell's value → hidden. INSEE: 0.85. */
  dominance: number;
}

/** INSEE's dominance threshold for one contributor (docs/publication.md). */
export const DOMINANCE = 0.85;

/** A table of R rows × C columns with its margins, after suppression. `hidden` is (R+1)×(C+1): the last row holds
 * the column totals, the last column the row totals, the corner the grand total. */
export interface Suppressed {
  cells: Cell[][];
  hidden: boolean[][];
  /** Why each hidden cell is hidden; only for the association's own review, never published (the reason of a hidden
   * cell would tell a reader which hidden cells are the small ones). */
  reason: ('primary' | 'secondary' | null)[][];
}

const sumCells = (cs: Cell[]): Cell => ({
  persons: cs.reduce((a, c) => a + c.persons, 0),
  value: cs.reduce((a, c) => a + c.value, 0),
  top: cs.reduce((a, c) => Math.max(a, c.top), 0),
});

/** The table with its margins: rows × columns, then each row's total, then the column totals and the grand total. */
export function withMargins(rows: Cell[][]): Cell[][] {
  const cols = rows[0]?.length ?? 0;
  const out = rows.map((r) => [...r, sumCells(r)]);
  const totals: Cell[] = [];
  for (let j = 0; j <= cols; j++) totals.push(sumCells(out.map((r) => r[j]!)));
  return [...out, totals];
}

/** A group is secret when it holds some persons but fewer than the threshold, or when one contribution dominates it. */
export function isSensitive(c: Cell, rules: Rules): boolean {
  if (c.persons > 0 && c.persons < rules.minGroup) return true;
  return c.value > 0 && c.top > rules.dominance * c.value;
}

type Pos = [number, number];

/** Suppress a table given without margins (R ≥ 1 rows of C ≥ 1 cells each); margins are added and protected too. */
export function suppress(rows: Cell[][], rules: Rules): Suppressed {
  if (!(rules.minGroup >= 1) || !(rules.dominance > 0 && rules.dominance <= 1)) throw new Error('suppression rules out of range');
  const cells = withMargins(rows);
  const R = cells.length, C = cells[0]!.length;
  const hidden = cells.map((r) => r.map(() => false));
  const reason: Suppressed['reason'] = cells.map((r) => r.map(() => null));
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) if (isSensitive(cells[i]![j]!, rules)) { hidden[i]![j] = true; reason[i]![j] = 'primary'; }
  const hide = ([i, j]: Pos) => { hidden[i]![j] = true; reason[i]![j] ??= 'secondary'; };
  // Smallest first: the least information lost; persons, then value, then position, so the choice is deterministic.
  const smallest = (cands: Pos[]): Pos | undefined => cands.sort((a, b) => {
    const x = cells[a[0]]![a[1]]!, y = cells[b[0]]![b[1]]!;
    return x.persons - y.persons || x.value - y.value || a[0] - b[0] || a[1] - b[1];
  })[0];

  const row = (i: number): Pos[] => Array.from({ length: C }, (_, j) => [i, j] as Pos);
  const column = (j: number): Pos[] => Array.from({ length: R }, (_, i) => [i, j] as Pos);

  for (;;) {
    let changed = false;
    // Rule 1, line by line: rows (their total is the last column) and columns (their total is the last row).
    for (const line of lines(R, C)) {
      const total = line[line.length - 1]!;
      if (hidden[total[0]]![total[1]]!) {
        // With its total hidden too, the line reveals only the sum of its published cells; one hidden cell alone
        // would still be its total minus nothing unknown.
        if (line.filter(([i, j]) => hidden[i]![j]).length === 1) { hide(smallest(line.filter(([i, j]) => !hidden[i]![j]))!); changed = true; }
        continue;
      }
      const inner = line.slice(0, -1);
      const h = inner.filter(([i, j]) => hidden[i]![j]);
      if (h.length === 0) continue;
      const group = sumCells(h.map(([i, j]) => cells[i]![j]!));
      if (h.length >= 2 && !isSensitive(group, rules)) continue;
      const open = inner.filter(([i, j]) => !hidden[i]![j]);
      // A partner whose crossing line already has a hidden cell closes a cycle instead of opening a new line: fewer
      // cells lost (the classic four-cell rectangle rather than a staircase).
      const isRow = line[0]![0] === line[1]![0];
      const crossing = ([i, j]: Pos) => (isRow ? column(j) : row(i)).some(([a, b]) => hidden[a]![b]);
      const pick = smallest(open.filter(crossing)) ?? smallest(open);
      // Nothing left to hide among the cells: the total goes (then the line reveals nothing more).
      hide(pick ?? total);
      changed = true;
    }
    if (changed) continue;
    // Rule 2: no hidden cell is a bridge of the hidden cells' graph.
    const bridge = findBridge(hidden, R, C);
    if (!bridge) break;
    const side = sideOf(hidden, R, C, bridge);
    const cands: Pos[] = [];
    for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) {
      if (hidden[i]![j]) continue;
      if (side.rows.has(i) !== side.cols.has(j)) cands.push([i, j]);
    }
    // Rule 1 leaves every line with 0 or ≥ 2 hidden cells, so each side of a bridge holds a cycle, hence a row and a
    // column, and a cell joining them exists; hiding it puts the bridge on a cycle.
    hide(smallest(cands) ?? bridge);
  }
  return { cells, hidden, reason };
}

/** Every line of the table with margins: its cells in order, its total last. */
function lines(R: number, C: number): Pos[][] {
  const out: Pos[][] = [];
  for (let i = 0; i < R; i++) out.push(Array.from({ length: C }, (_, j) => [i, j] as Pos));
  for (let j = 0; j < C; j++) out.push(Array.from({ length: R }, (_, i) => [i, j] as Pos));
  return out;
}

/** Graph: row nodes 0..R-1, column nodes R..R+C-1; a hidden cell (i, j) is the edge i — R+j. */
function edges(hidden: boolean[][], R: number, C: number): Pos[] {
  const out: Pos[] = [];
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) if (hidden[i]![j]) out.push([i, j]);
  return out;
}

/** A bridge of the hidden cells' graph, if any (Tarjan's low-link, iterative depth-first search). */
function findBridge(hidden: boolean[][], R: number, C: number): Pos | undefined {
  const es = edges(hidden, R, C);
  const n = R + C;
  const adj: { to: number; e: number }[][] = Array.from({ length: n }, () => []);
  es.forEach(([i, j], e) => { adj[i]!.push({ to: R + j, e }); adj[R + j]!.push({ to: i, e }); });
  const disc = new Array<number>(n).fill(-1), low = new Array<number>(n).fill(0);
  let time = 0;
  for (let s = 0; s < n; s++) {
    if (disc[s] !== -1) continue;
    const stack: { v: number; via: number; k: number }[] = [{ v: s, via: -1, k: 0 }];
    disc[s] = low[s] = time++;
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const nb = adj[top.v]![top.k++];
      if (nb) {
        if (nb.e === top.via) continue;
        if (disc[nb.to] === -1) { disc[nb.to] = low[nb.to] = time++; stack.push({ v: nb.to, via: nb.e, k: 0 }); }
        else low[top.v] = Math.min(low[top.v]!, disc[nb.to]!);
        continue;
      }
      stack.pop();
      const parent = stack[stack.length - 1];
      if (parent) {
        low[parent.v] = Math.min(low[parent.v]!, low[top.v]!);
        if (low[top.v]! > disc[parent.v]!) return es[top.via]!;
      }
    }
  }
  return undefined;
}

/** The rows and columns reachable from the bridge's row without crossing the bridge. */
function sideOf(hidden: boolean[][], R: number, C: number, bridge: Pos): { rows: Set<number>; cols: Set<number> } {
  const rows = new Set<number>([bridge[0]]), cols = new Set<number>();
  const todo: ['r' | 'c', number][] = [['r', bridge[0]]];
  while (todo.length) {
    const [kind, k] = todo.pop()!;
    if (kind === 'r') {
      for (let j = 0; j < C; j++) if (hidden[k]![j] && !(k === bridge[0] && j === bridge[1]) && !cols.has(j)) { cols.add(j); todo.push(['c', j]); }
    } else {
      for (let i = 0; i < R; i++) if (hidden[i]![k] && !(i === bridge[0] && k === bridge[1]) && !rows.has(i)) { rows.add(i); todo.push(['r', i]); }
    }
  }
  return { rows, cols };
}
