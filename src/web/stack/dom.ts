// The few DOM helpers every panel of the stack view draws with: the view is
// plain DOM (no framework), redrawn on every refresh.
import { HyperlabError } from "../../errors.ts";

/** A new element with an optional class, text and children. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: { className?: string; text?: string } = {}, ...children: Node[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  node.append(...children);
  return node;
}

/** A definition list of `[term, value]` rows. */
export function list(rows: Array<[string, string]>): HTMLDListElement {
  const dl = el("dl");
  for (const [k, v] of rows) dl.append(el("dt", { text: k }), el("dd", { text: v }));
  return dl;
}

/** A button that runs `action` on click; `name` becomes its `data-action`, which the browser tests click by. */
export function button(text: string, action: () => void, opts: { primary?: boolean; disabled?: boolean; name?: string } = {}): HTMLButtonElement {
  const b = el("button", { text, className: opts.primary ? "primary" : undefined });
  b.type = "button";
  b.disabled = !!opts.disabled;
  if (opts.name) b.dataset.action = opts.name;
  b.addEventListener("click", action);
  return b;
}

/** A form control under its label (`wide` spans two columns of the form). */
export function labelled(text: string, control: HTMLElement, wide = false): HTMLLabelElement {
  const label = el("label", { className: wide ? "wide" : undefined, text });
  label.append(control);
  return label;
}

/** One keyed item of a list that is drawn again on every refresh. */
export interface Keyed {
  key: string;
  /** what the item shows that is not updated in place: a new signature draws the item anew */
  signature: string;
  render(): HTMLElement;
}

/**
 * Shows `items` in `box`, keeping the node of every item whose key and
 * signature are unchanged: a refresh then never replaces a button under the
 * pointer (a click whose press and release land on different nodes is lost).
 */
export function reconcile(box: HTMLElement, items: Keyed[]): HTMLElement[] {
  const old = new Map<string, HTMLElement>();
  for (const child of box.children) {
    const e = child as HTMLElement;
    if (e.dataset.key !== undefined) old.set(e.dataset.key, e);
  }
  const nodes = items.map((item) => {
    const kept = old.get(item.key);
    if (kept && kept.dataset.signature === item.signature) return kept;
    const node = item.render();
    node.dataset.key = item.key;
    node.dataset.signature = item.signature;
    return node;
  });
  const same = nodes.length === box.children.length && nodes.every((n, i) => box.children[i] === n);
  if (!same) box.replaceChildren(...nodes);
  return nodes;
}

/** Shows an error (or a message) in place: code, then what happened and what to do. */
export function showStatus(box: HTMLElement, what: string | unknown): void {
  box.replaceChildren();
  box.classList.toggle("error", typeof what !== "string");
  if (typeof what === "string") {
    box.textContent = what;
    return;
  }
  const err = what instanceof HyperlabError ? what : new HyperlabError("INVALID_ARGUMENT", String((what as Error)?.message ?? what));
  box.append(el("span", { className: "code", text: err.code }), document.createTextNode(err.message));
}
