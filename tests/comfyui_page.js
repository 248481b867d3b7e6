// Injected into a real ComfyUI page by tests/test_comfyui_e2e.py (never served by the pack).
// Defines window.sharpE2E: load a workflow through the front end, lower its heavy widgets, queue it
// as the Run button does, and report what the server and the UI said. Uses only the front end's
// public objects (window.app, app.api / api events, the node widgets).
(() => {
  if (window.sharpE2E) return;
  const app = window.app;
  const api = app.api ?? window.comfyAPI?.api?.api;
  const events = [];
  for (const type of ["execution_start", "execution_error", "execution_success", "execution_interrupted",
                      "executed", "execution_cached"]) {
    api.addEventListener(type, (e) => events.push({ type, detail: e.detail }));
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const nodes = () => app.graph?._nodes ?? app.graph?.nodes ?? [];

  function visibleText(selector) {
    return [...document.querySelectorAll(selector)]
      .filter((el) => el.offsetParent !== null || getComputedStyle(el).position === "fixed")
      .map((el) => el.innerText.trim()).filter(Boolean);
  }

  window.sharpE2E = {
    events,
    version: () => window.__COMFYUI_FRONTEND_VERSION__ ?? null,

    /** The widgets a fresh node of `type` gets from this front end, and what it saves. */
    widgetOrder(type) {
      const node = window.LiteGraph.createNode(type);
      app.graph.add(node);
      const info = {
        names: node.widgets.map((w) => w.name),
        types: node.widgets.map((w) => w.type),
        serialize: node.widgets.map((w) => w.serialize !== false && w.options?.serialize !== false),
        saved: node.serialize().widgets_values,
      };
      app.graph.remove(node);
      return info;
    },

    async load(workflow) {
      await app.loadGraphData(workflow);
      await sleep(300);
      return nodes().length;
    },

    /** Set widget values by name ({node_id: {widget: value}}); returns what was set. */
    setWidgets(changes) {
      const done = [];
      for (const [id, values] of Object.entries(changes)) {
        const node = app.graph.getNodeById(id) ?? app.graph.getNodeById(Number(id));
        if (!node) throw new Error(`no node ${id}`);
        for (const [name, value] of Object.entries(values)) {
          const widget = node.widgets?.find((w) => w.name === name);
          if (!widget) throw new Error(`node ${id} (${node.type}) has no widget ${name}`);
          widget.value = value;
          widget.callback?.(value);
          done.push(`${id}.${name}=${value}`);
        }
      }
      app.graph.setDirtyCanvas?.(true, true);
      return done;
    },

    /** Queue the workflow as the Run button does; wait for the server to finish it. */
    async run(timeoutMs) {
      events.length = 0;
      app.lastNodeErrors = null;
      const start = Date.now();
      let queued;
      try {
        queued = await app.queuePrompt(0, 1);
      } catch (err) {
        return { status: "queue_failed", error: String(err?.stack ?? err) };
      }
      if (app.lastNodeErrors && Object.keys(app.lastNodeErrors).length) {
        return { status: "invalid", node_errors: app.lastNodeErrors, dialogs: this.dialogs() };
      }
      while (Date.now() - start < timeoutMs) {
        const end = events.find((e) => ["execution_error", "execution_success", "execution_interrupted"].includes(e.type));
        if (end) {
          await sleep(500);
          return { status: end.type, queued, detail: end.type === "execution_success" ? null : end.detail,
                   executed: events.filter((e) => e.type === "executed").map((e) => e.detail.node),
                   seconds: (Date.now() - start) / 1000 };
        }
        if (Date.now() - start > 3000 && !events.length && this.dialogs().length) {
          return { status: "dialog", dialogs: this.dialogs() };
        }
        await sleep(250);
      }
      return { status: "timeout", events: events.map((e) => e.type) };
    },

    /** Texts of visible dialogs and error toasts: PrimeVue dialogs and toasts (1.2x), the legacy
     *  modal, and 1.5x's error overlay and the Issues panel's error log. */
    dialogs() {
      return [...visibleText(".p-dialog"), ...visibleText(".p-toast-message-error"),
              ...visibleText(".comfy-modal-content"), ...visibleText("[data-testid='error-overlay']"),
              ...visibleText("[data-testid='runtime-error-panel']")];
    },

    closeDialogs() {
      for (const b of document.querySelectorAll(".p-dialog .p-dialog-close-button, .p-dialog-header-close, "
                                                + "[data-testid='error-overlay-dismiss']")) b.click();
    },

    /** Where each SHARP viewer sits on the page, and what it holds. */
    viewers() {
      return nodes().filter((n) => n.sharpViewer).map((n) => {
        const v = n.sharpViewer;
        const r = v.canvas.getBoundingClientRect();
        return {
          id: n.id, type: n.type, splats: v.header?.count ?? 0, visible: v.visible,
          message: v.message?.style.display !== "none" ? v.message?.textContent : "",
          rect: { x: r.x, y: r.y, w: r.width, h: r.height },
          inDocument: document.contains(v.canvas),
          vueNode: !!v.canvas.closest("[data-node-id]"),
        };
      });
    },

    /** Canvases of core 3D nodes (Load 3D / Preview 3D): the largest canvas drawn over the node. */
    canvases3d() {
      const graphCanvas = app.canvas.canvas, ds = app.canvas.ds;
      const box = graphCanvas.getBoundingClientRect();
      return nodes().filter((n) => /^(Preview3D|Load3D)/.test(n.type)).map((n) => {
        // Nodes 2.0 draws the node as a DOM element of its own: its canvases are the node's
        const element = document.querySelector(`[data-node-id="${n.id}"]`);
        const x = (n.pos[0] + ds.offset[0]) * ds.scale + box.left, y = (n.pos[1] + ds.offset[1]) * ds.scale + box.top;
        const w = n.size[0] * ds.scale, h = n.size[1] * ds.scale;
        const candidates = element ? [...element.querySelectorAll("canvas")] : [...document.querySelectorAll("canvas")];
        const inside = candidates.filter((c) => c !== graphCanvas).map((c) => c.getBoundingClientRect())
          .filter((r) => r.width > 50 && r.height > 50 && (element || (r.x + r.width / 2 > x && r.x + r.width / 2 < x + w
                  && r.y + r.height / 2 > y && r.y + r.height / 2 < y + h)))
          .sort((a, b) => b.width * b.height - a.width * a.height);
        const r = inside[0];
        return { id: n.id, type: n.type, found: !!r, rect: r ? { x: r.x, y: r.y, w: r.width, h: r.height } : null };
      });
    },

    /** Text of the error dialog and toasts, and the last execution error the server sent. */
    async errorReport() {
      // 1.5x first shows a short overlay ("<node> failed"); its "View details" opens the error log,
      // as a user would
      const details = document.querySelector("[data-testid='error-overlay-see-errors']");
      if (details) {
        details.click();
        await sleep(1500);
      }
      const err = events.find((e) => e.type === "execution_error")?.detail;
      return { dialogs: this.dialogs(), exception_type: err?.exception_type ?? null,
               exception_message: err?.exception_message ?? null, node_type: err?.node_type ?? null };
    },

    /** Centre node `id` in the view so its widget is on screen. */
    focus(id) {
      const node = app.graph.getNodeById(id) ?? app.graph.getNodeById(Number(id));
      const canvas = app.canvas;
      if (canvas?.centerOnNode) canvas.centerOnNode(node);
      else if (canvas?.ds) {
        canvas.ds.offset[0] = -node.pos[0] - node.size[0] / 2 + canvas.canvas.width / 2;
        canvas.ds.offset[1] = -node.pos[1] - node.size[1] / 2 + canvas.canvas.height / 2;
      }
      canvas?.setDirty?.(true, true);
      canvas?.draw?.(true, true); // DOM widgets follow the canvas on its next draw
    },

    async setSetting(id, value) {
      const store = app.extensionManager?.setting;
      if (store?.set) await store.set(id, value);
      else await app.ui.settings.setSettingValueAsync(id, value);
      return store?.get ? store.get(id) : app.ui.settings.getSettingValue(id);
    },
  };
})();
