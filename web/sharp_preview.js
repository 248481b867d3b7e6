// ComfyUI extension: attaches the SHARP 3D viewer to the Preview Gaussians and Save Gaussians
// nodes. The renderer (sharp_viewer.js) and decoder (sharp_preview_format.js) stand alone; the
// PLY upload button is its own extension (sharp_ply_upload.js).
//
// The node's `ui` carries `sharp_preview: [{filename, subfolder, type, focal_px, image_size, ...}]`.
// The last entry shown is kept in node.properties so a reopened workflow loads it again while
// ComfyUI's temp folder still holds the file (it is emptied when the server restarts).

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { SplatViewer } from "./sharp_viewer.js";

const PREVIEW_NODE = "SharpPreviewGaussians";
const SAVE_NODE = "SharpSaveGaussians";
const UI_KEY = "sharp_preview";
const PROPERTY = "sharp_preview";
const STATE_PROPERTY = "sharp_viewer"; // background, quality and view (SplatViewer.getState)
const VIEWS_WIDGET = "camera_views";   // Preview Gaussians' STRING input: JSON camera views
const MIN_WIDTH = 320;
const MIN_HEIGHT = 300;

function viewUrl(entry) {
  const params = new URLSearchParams({
    filename: entry.filename, subfolder: entry.subfolder ?? "", type: entry.type ?? "temp",
  });
  return api.apiURL(`/view?${params.toString()}`);
}

function attachViewer(node) {
  if (node.sharpViewer) return node.sharpViewer;
  const container = document.createElement("div");
  Object.assign(container.style, { width: "100%", height: "100%", minHeight: `${MIN_HEIGHT - 60}px` });
  const widget = node.addDOMWidget("sharp_preview", "sharp_preview", container, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => MIN_HEIGHT - 60,
    // Front ends with "Nodes 2.0" (Vue nodes) place a DOM widget on several surfaces; one WebGL
    // canvas can live in one place only, so show it on the node (either kind), never in the side
    // panel. Older front ends ignore this option.
    surfaces: { canvas: "shown", vueNode: "shown", panel: "never" },
  });
  // 1.58 reads the widget's own flag, not options.serialize: without it workflows saved there carry
  // an extra "" value for the viewer
  if (widget) widget.serialize = false;
  const viewer = new SplatViewer(container, viewerOptions(node));
  node.sharpViewer = viewer;
  const release = () => {
    viewer.dispose();
    if (node.sharpViewer === viewer) node.sharpViewer = null;
  };
  const widgetRemove = widget?.onRemove;
  if (widget) {
    widget.onRemove = function () {
      release();
      return widgetRemove?.apply(this, arguments);
    };
  }
  const nodeRemoved = node.onRemoved;
  node.onRemoved = function () {
    release();
    return nodeRemoved?.apply(this, arguments);
  };
  const [w, h] = node.size ?? [0, 0];
  if (w < MIN_WIDTH || h < MIN_HEIGHT) node.setSize?.([Math.max(w, MIN_WIDTH), Math.max(h, MIN_HEIGHT)]);
  return viewer;
}

// The viewer stores camera views in the node's `camera_views` widget (serialised with the workflow,
// and an input, so a change re-runs the node) and its state in node.properties.
function viewerOptions(node) {
  const options = {
    onStateChange: (state) => {
      node.properties ??= {};
      node.properties[STATE_PROPERTY] = state;
      markWorkflowChanged();
    },
  };
  if ((node.comfyClass ?? node.type) === PREVIEW_NODE) {
    const widget = () => node.widgets?.find((w) => w.name === VIEWS_WIDGET);
    options.cameraViews = {
      get: () => String(widget()?.value ?? ""),
      set: (text) => {
        const views = widget();
        if (!views) return;
        views.value = text;
        views.callback?.(text);
        node.setDirtyCanvas?.(true, true);
        markWorkflowChanged();
      },
    };
  }
  return options;
}

async function showEntry(node, entry) {
  const viewer = attachViewer(node);
  if (!viewer.supported) return;
  viewer.showMessage("Loading 3D preview…");
  try {
    const response = await fetch(viewUrl(entry));
    if (!response.ok) {
      viewer.showMessage(response.status === 404
        ? "The preview file is gone (ComfyUI empties temp/ on restart): run the workflow again."
        : `Could not load the preview (HTTP ${response.status}).`);
      return;
    }
    await viewer.loadStream(response); // draws a coarse picture first, the rest as it arrives
    node.setDirtyCanvas?.(true, false);
  } catch (err) {
    viewer.showMessage(`Could not show the preview: ${err.message ?? err}`);
  }
}

// Let the frontend's change tracker store the new node property with the open workflow, so a
// page reload restores the preview too (saving the workflow stores it in any case).
function markWorkflowChanged() {
  try {
    const tracker = app.extensionManager?.workflow?.activeWorkflow?.changeTracker;
    // captureCanvasState() replaces checkState() (deprecated, with a console warning, since the
    // front ends of 2026); 1.27 has only checkState()
    if (typeof tracker?.captureCanvasState === "function") tracker.captureCanvasState();
    else tracker?.checkState?.();
  } catch {
    // an older or newer frontend without this tracker: the property is still saved with the workflow
  }
}

function firstEntry(message) {
  const entries = message?.[UI_KEY];
  return Array.isArray(entries) && entries.length && entries[0]?.filename ? entries[0] : null;
}

app.registerExtension({
  name: "sharp.splats.PreviewGaussians",

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== PREVIEW_NODE && nodeData?.name !== SAVE_NODE) return;
    const alwaysShow = nodeData.name === PREVIEW_NODE;

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      if (alwaysShow) {
        const viewer = attachViewer(this);
        if (viewer.supported) viewer.showMessage("Run the workflow to see the scene here.");
      }
      return result;
    };

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const result = onExecuted?.apply(this, arguments);
      const entry = firstEntry(message);
      if (entry) {
        this.properties ??= {};
        this.properties[PROPERTY] = entry;
        markWorkflowChanged();
        showEntry(this, entry);
      }
      return result;
    };

    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = onConfigure?.apply(this, arguments);
      if (this.properties?.[STATE_PROPERTY]) attachViewer(this).applyState(this.properties[STATE_PROPERTY]);
      const entry = this.properties?.[PROPERTY];
      // Wait for the graph to finish loading before fetching.
      if (entry?.filename) setTimeout(() => showEntry(this, entry), 0);
      return result;
    };
  },
});
