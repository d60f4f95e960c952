import { analyzeStep, AnalyzeStepOptions, HistoryCell, StepAnalysis } from "./analysis";
import { analyzeCellDefinitions } from "./cell";

export interface CellEdge {
  /** Index of the cell depended on (earlier). */
  from: number;
  /** Index of the dependent cell (later). */
  to: number;
  /** The names that carry the dependency. */
  names: string[];
  /** Every name involved is used only in type positions. */
  typeOnly: boolean;
}

export interface CellGraph {
  /** Per cell, the same analysis a `%%step` of it would get, against the cells before it. */
  cells: Array<{ id: string; index: number; analysis: StepAnalysis }>;
  edges: CellEdge[];
}

/**
 * The data-dependency DAG of a notebook's cells, in notebook order. Cell B
 * depends on cell A when packaging B as a step would take an input or a
 * piece of source from A (so a function's own dependencies count, wherever
 * they live), or when A assigns (`x = …`) a value B reads after its last
 * declaration. Mutation through methods (`arr.push(…)`) is not visible here.
 *
 * `implicitFor` gives foreach cells their implicit names.
 */
export function buildCellGraph(cells: readonly HistoryCell[], implicitFor: (index: number) => AnalyzeStepOptions = () => ({})): CellGraph {
  const out: CellGraph = { cells: [], edges: [] };
  cells.forEach((cell, index) => {
    const before = cells.slice(0, index);
    const analysis = analyzeStep(cell.code, before, implicitFor(index));
    out.cells.push({ id: cell.id, index, analysis });
    const deps = new Map<number, { names: Set<string>; typeOnly: boolean }>();
    const add = (from: number, name: string, typeOnly: boolean): void => {
      const d = deps.get(from);
      if (d) {
        d.names.add(name);
        d.typeOnly &&= typeOnly;
      } else {
        deps.set(from, { names: new Set([name]), typeOnly });
      }
    };
    for (const input of analysis.inputs) {
      add(input.cellIndex, input.name, input.typeOnly);
      // Later top-level assignments make newer versions of the value.
      for (let w = input.cellIndex + 1; w < index; w++) {
        if (analyzeCellDefinitions(cells[w].code).assigns.includes(input.name)) add(w, input.name, input.typeOnly);
      }
    }
    for (const item of analysis.closure) for (const name of item.names) add(item.cellIndex, name, item.typeOnly);
    for (const [from, { names, typeOnly }] of [...deps.entries()].sort(([a], [b]) => a - b)) {
      out.edges.push({ from, to: index, names: [...names], typeOnly });
    }
  });
  return out;
}
