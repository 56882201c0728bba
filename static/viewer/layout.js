/**
 * The viewport grid: 1×1, 1×2 or 2×2, each viewport with its own series, and
 * which one is active (the one the toolbar and the keys act on).
 */

export const LAYOUTS = { "1x1": 1, "1x2": 2, "2x2": 4 };

export class Layout {
  constructor(grid, createViewport) {
    this.grid = grid;
    this.createViewport = createViewport;
    this.viewports = [];
    this.active = null;
    this.name = "";
  }

  /** Switch to layout `name`; return the viewports that were added (they need a series). */
  set(name) {
    const count = LAYOUTS[name];
    if (!count) return [];
    const added = [];
    while (this.viewports.length < count) {
      const viewport = this.createViewport(this.viewports.length);
      this.grid.append(viewport.element);
      this.viewports.push(viewport);
      added.push(viewport);
    }
    while (this.viewports.length > count) this.viewports.pop().destroy();
    this.grid.dataset.layout = name;
    this.name = name;
    if (!this.viewports.includes(this.active)) this.activate(this.viewports[0]);
    return added;
  }

  activate(viewport) {
    if (!viewport || viewport === this.active) return false;
    this.active = viewport;
    for (const other of this.viewports) other.element.classList.toggle("is-active", other === viewport);
    return true;
  }

  /** The stacks on screen, for the loader to prefetch. */
  stacks() {
    return this.viewports.map((viewport) => viewport.stack).filter(Boolean);
  }
}
