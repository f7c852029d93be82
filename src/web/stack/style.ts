// The stack view's styles: it draws into a shadow root (see hyperlab-vm.ts),
// so they come with it instead of from the page.

/** The CSS of the stack view, scoped under its `.stackview` element. */
export const STACK_STYLE = `
.stackview { padding: 8px 10px; font-size: 13px; color: #1d2330; }
.stackview h3 { margin: 10px 0 4px; font-size: 12px; letter-spacing: .04em; text-transform: uppercase; color: #4a5568; }
.stackview section { border: 1px solid #d6dde7; border-radius: 6px; padding: 6px 8px; background: #fff; margin-bottom: 6px; }
.stackview dl { display: grid; grid-template-columns: max-content 1fr; gap: 1px 10px; margin: 0; }
.stackview dt { color: #4a5568; }
.stackview dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.stackview .mono { font: 12px ui-monospace, monospace; }
.stackview .muted { color: #6b7686; }
.stackview .diagram { font: 12px ui-monospace, monospace; white-space: pre; color: #2d3748; margin: 4px 0 0; }
.stackview form { display: grid; grid-template-columns: repeat(3, 1fr); gap: 4px 6px; margin: 0 0 4px; }
.stackview label { display: flex; flex-direction: column; font-size: 11px; color: #4a5568; min-width: 0; }
.stackview label.wide { grid-column: span 2; }
.stackview input, .stackview select { font: 12px ui-monospace, monospace; padding: 2px 4px; min-width: 0; border: 1px solid #c9d1dc; border-radius: 4px; }
.stackview button { font: 12px system-ui, sans-serif; padding: 2px 8px; border: 1px solid #9fb0c6; border-radius: 4px; background: #eef3f9; cursor: pointer; }
.stackview button:disabled { opacity: .5; cursor: default; }
.stackview button.primary { background: #2f6fb5; color: #fff; border-color: #2f6fb5; }
.stackview .actions { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 4px; }
.stackview .status { margin: 4px 0 0; font-size: 12px; color: #2d3748; white-space: pre-wrap; overflow-wrap: anywhere; }
.stackview .status:empty { display: none; }
.stackview .status.error { color: #7a1c12; background: #fff4f2; border: 1px solid #e7b4aa; border-radius: 4px; padding: 4px 6px; }
.stackview .status.error .code { font: 11px ui-monospace, monospace; color: #a0453a; display: block; }
.stackview .item { border-top: 1px solid #e4e9f0; padding: 5px 0 4px; }
.stackview .item:first-child { border-top: 0; }
.stackview .item .head { display: flex; flex-wrap: wrap; gap: 0 8px; align-items: baseline; }
.stackview .state { font-size: 11px; padding: 0 5px; border-radius: 8px; background: #e6eaf0; }
.stackview .state.running { background: #dcf1e1; color: #23613a; }
.stackview .state.paused { background: #fbefc9; color: #7a5a00; }
.stackview .state.exited, .stackview .state.stopped { background: #f2e3e1; color: #7a1c12; }
.stackview table { border-collapse: collapse; width: 100%; font-size: 12px; }
.stackview th, .stackview td { text-align: left; padding: 2px 4px; border-bottom: 1px solid #e4e9f0; vertical-align: top; font-variant-numeric: tabular-nums; }
.stackview td.own { background: #e8f1fb; }
.stackview .compare td:first-child { color: #4a5568; }
.stackview .api-calls td.path { word-break: break-all; }
.stackview .api-calls td.time { white-space: nowrap; text-align: right; }
.stackview .api-calls tr.failed td { color: #7a1c12; }
.stackview .images h4 { margin: 8px 0 2px; font-size: 12px; color: #2d3748; }
.stackview .images p { margin: 2px 0; font-size: 12px; }
.stackview .images .digest { font-size: 11px; overflow-wrap: anywhere; }
.stackview .images tr[data-source=network] td:last-child { color: #23613a; }
.stackview .images tr[data-source=page] td:last-child, .stackview .images tr[data-source=browser-cache] td:last-child { color: #4a5568; }
.stackview .compare .big { font-size: 15px; font-weight: 600; }
.stackview h4 { margin: 8px 0 2px; font-size: 12px; color: #2d3748; }
.stackview .systems tr[data-state="not built yet"] td, .stackview .systems tr[data-state="cannot run here"] td { color: #4a5568; }
`;
