// Each chart's numbers as a table, in a <details> under the chart: the same values the lines show, readable
// with a screen reader, copyable, and exact where a line is only approximate.

import { el } from './util.js';

export class ChartTable {
  /** Appends <details><summary>…</summary><table/></details> after `chart` (a chart's container). */
  constructor(chart, summary) {
    this.table = el('table', { class: 'chart-table' });
    this.note = el('p', { class: 'help' });
    this.details = el('details', { class: 'chart-numbers' }, el('summary', {}, summary), this.note, this.table);
    chart.after(this.details);
    this.signature = '';
  }

  /** `headers`: column titles; `rows`: arrays of cell texts; `empty`: shown when there are no rows. */
  set(headers, rows, empty = 'No values yet.') {
    const signature = JSON.stringify([headers, rows]);
    if (signature === this.signature) return;
    this.signature = signature;
    this.note.textContent = rows.length ? '' : empty;
    this.table.hidden = !rows.length;
    this.table.replaceChildren(
      el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, ...rows.map(([first, ...rest]) => el('tr', {}, el('th', { scope: 'row' }, first), ...rest.map((c) => el('td', {}, c))))),
    );
  }
}
