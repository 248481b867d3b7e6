// Splat-file upload for Load Gaussians, without ComfyUI: the request, the server's answer and the
// combo update. The front end only makes upload buttons for images, video and audio, so the
// extension in sharp_ply_upload.js adds one and calls `uploadPly` with ComfyUI's `api.fetchApi`.
// Nothing here touches ComfyUI or the DOM, so Node's test runner can import it.
//
// ComfyUI's `POST /upload/image` takes any file type into input/ (form fields: `image` = the file,
// `type` = "input", optional `subfolder`; without `overwrite` it keeps an identical file and
// renames a different one "name (1).spz") and answers {name, subfolder, type}.

export const PLY_LOADER_NODE = "SharpLoadGaussians";
export const PLY_COMBO = "ply"; // the node's file list, see nodes/ply_files.py input_ply_files()
export const UPLOAD_LABEL = "upload splat file";
export const UPLOAD_ROUTE = "/upload/image";
// Endings Load Gaussians reads as one file (sharp_core.FORMATS; ".compressed.ply" ends in ".ply").
// A loose SOG's meta.json is left out: its WebP images must sit beside it, which one upload can't do.
// tests/js/ply_upload.test.mjs checks this list against the Python one.
export const SPLAT_EXTENSIONS = [".ply", ".spz", ".splat", ".sog", ".glb", ".ksplat"];
export const SPLAT_ACCEPT = SPLAT_EXTENSIONS.join(",");
export const PLY_ACCEPT = SPLAT_ACCEPT; // the name from when only PLY was taken

/** True for a File (or any {name}) whose name ends in a splat format's extension, any case. */
export function isSplatFile(file) {
  if (typeof file?.name !== "string") return false;
  const name = file.name.toLowerCase();
  return SPLAT_EXTENSIONS.some((ending) => name.endsWith(ending));
}
export const isPlyFile = isSplatFile;

/** The first splat file among dropped or chosen files (a FileList or an array), or null. */
export function firstSplatFile(files) {
  for (const file of Array.from(files ?? [])) if (isSplatFile(file)) return file;
  return null;
}
export const firstPlyFile = firstSplatFile;

/** The multipart body ComfyUI's upload route expects, with the file going to input/. */
export function plyUploadForm(file, FormDataImpl = globalThis.FormData) {
  const form = new FormDataImpl();
  form.append("image", file, file.name);
  form.append("type", "input");
  form.append("subfolder", "");
  return form;
}

/** The combo value for the uploaded file: its path under input/ with "/" separators. */
export function comboValueFor(answer) {
  const name = answer?.name;
  if (typeof name !== "string" || !name) {
    throw new Error("ComfyUI's upload answer names no file; the upload may have failed on the server.");
  }
  const subfolder = (answer.subfolder ?? "").replaceAll("\\", "/").replace(/\/+$/, "");
  return subfolder ? `${subfolder}/${name}` : name;
}

/** Offer `value` in the combo (kept sorted, as the node lists files) and select it. */
export function selectChoice(widget, value) {
  const values = widget.options?.values;
  if (Array.isArray(values) && !values.includes(value)) {
    values.push(value);
    values.sort();
  }
  widget.value = value;
  widget.callback?.(value);
  return value;
}

/**
 * Upload a splat file into ComfyUI's input folder and select it in `widget`.
 * `fetchApi(route, init)` is ComfyUI's `api.fetchApi` (it adds the server's URL prefix).
 * Resolves to the selected value; rejects with a message that says what to do.
 */
export async function uploadPly(file, { fetchApi, widget, FormDataImpl = globalThis.FormData }) {
  if (!isSplatFile(file)) {
    throw new Error(`'${file?.name ?? file}' is not a splat file Load Gaussians reads: choose one ending in ${SPLAT_EXTENSIONS.join(", ")}.`);
  }
  const response = await fetchApi(UPLOAD_ROUTE, { method: "POST", body: plyUploadForm(file, FormDataImpl) });
  if (!response.ok) {
    const hint = response.status === 413
      ? " The file exceeds ComfyUI's upload limit; start ComfyUI with a larger --max-upload-size (MB) or copy the file into its input folder."
      : "";
    throw new Error(`Uploading ${file.name} failed (HTTP ${response.status}).${hint}`);
  }
  return selectChoice(widget, comboValueFor(await response.json()));
}
