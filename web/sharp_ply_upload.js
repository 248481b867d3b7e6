// ComfyUI extension: an "upload splat file" button (and drag-and-drop of a splat file: .ply, .spz,
// .splat, .sog, .glb, .ksplat) on Load Gaussians.
// The upload itself lives in sharp_ply_upload_core.js; this module only wires it to the node.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import {
  PLY_COMBO, PLY_LOADER_NODE, SPLAT_ACCEPT, UPLOAD_LABEL, firstSplatFile, uploadPly,
} from "./sharp_ply_upload_core.js";

function reportError(err) {
  const detail = err?.message ?? String(err);
  const toast = app.extensionManager?.toast;
  if (toast?.add) toast.add({ severity: "error", summary: "Load Gaussians", detail, life: 8000 });
  else window.alert(detail);
}

function addUploadButton(node) {
  const combo = node.widgets?.find((w) => w.name === PLY_COMBO);
  if (!combo || node.sharpPlyUpload) return;

  const upload = async (file) => {
    button.name = `uploading ${file.name}…`;
    node.setDirtyCanvas?.(true, false);
    try {
      await uploadPly(file, { fetchApi: (route, init) => api.fetchApi(route, init), widget: combo });
    } catch (err) {
      reportError(err);
    } finally {
      button.name = UPLOAD_LABEL;
      node.setDirtyCanvas?.(true, true);
    }
  };

  const picker = document.createElement("input");
  Object.assign(picker, { type: "file", accept: SPLAT_ACCEPT });
  picker.style.display = "none";
  picker.addEventListener("change", () => {
    const file = picker.files?.[0];
    picker.value = ""; // choosing the same file again still fires change
    if (file) upload(file);
  });
  document.body.append(picker);

  // not saved with the workflow (serialize) nor sent with the prompt (options.serialize)
  const button = node.addWidget("button", UPLOAD_LABEL, null, () => picker.click(), { serialize: false });
  button.serialize = false;
  node.sharpPlyUpload = { picker, upload };

  const onRemoved = node.onRemoved;
  node.onRemoved = function () {
    picker.remove();
    return onRemoved?.apply(this, arguments);
  };
}

app.registerExtension({
  name: "sharp.splats.PlyUpload",

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== PLY_LOADER_NODE) return;

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      addUploadButton(this);
      return result;
    };

    const onDragOver = nodeType.prototype.onDragOver;
    nodeType.prototype.onDragOver = function (event) {
      const items = Array.from(event?.dataTransfer?.items ?? []);
      return items.some((item) => item.kind === "file") || (onDragOver?.apply(this, arguments) ?? false);
    };

    const onDragDrop = nodeType.prototype.onDragDrop;
    nodeType.prototype.onDragDrop = function (event) {
      const file = firstSplatFile(event?.dataTransfer?.files);
      if (file && this.sharpPlyUpload) {
        this.sharpPlyUpload.upload(file);
        return true;
      }
      return onDragDrop?.apply(this, arguments) ?? false;
    };
  },
});
