/**
 * Timing hooks for the benchmark (benchmarks/viewer_bench.py): scroll the
 * loaded stack one slice per animation frame, or back to back, and time it.
 */

async function untilLoaded(viewer, viewport, timeout) {
  const started = performance.now();
  await viewer.ready;
  return new Promise((resolve, reject) => {
    const check = () => {
      const stack = viewport.stack;
      if (stack && stack.loaded(viewer.loader) >= stack.length) resolve(stack.length);
      else if (performance.now() - started > timeout) reject(new Error("stack not loaded in time"));
      else setTimeout(check, 50);
    };
    check();
  });
}

/** Install window.__viewerBench: timed scrolling through the active viewport's loaded stack. */
export function installBench(viewer) {
  window.__viewerBench = {
    loaded: (timeout = 120000) => untilLoaded(viewer, viewer.layout.active, timeout),
    /** Draw `n` consecutive slices, one per animation frame (what the screen can show). */
    async scroll(n, timeout = 120000) {
      const viewport = viewer.layout.active;
      await untilLoaded(viewer, viewport, timeout);
      let drawn = 0;
      const started = performance.now();
      for (let i = 0; i < n; i++) {
        viewport.setSlice((viewport.slice + 1) % viewport.stack.length);
        if (viewport.draw()) drawn++;
        await new Promise((resolve) => requestAnimationFrame(resolve));
      }
      const ms = performance.now() - started;
      return { images: drawn, ms, perSecond: (drawn * 1000) / ms };
    },
    /** Draw `n` consecutive slices back to back: the drawing cost alone. */
    async drawRate(n, timeout = 120000) {
      const viewport = viewer.layout.active;
      await untilLoaded(viewer, viewport, timeout);
      let drawn = 0;
      const started = performance.now();
      for (let i = 0; i < n; i++) {
        viewport.setSlice((viewport.slice + 1) % viewport.stack.length);
        if (viewport.draw()) drawn++;
      }
      const ms = performance.now() - started;
      return { images: drawn, ms, perSecond: (drawn * 1000) / ms };
    },
  };
}
