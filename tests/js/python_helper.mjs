// Shared by the JS tests that cross-check against the Python implementation (not a test file).
import { execFileSync } from "node:child_process";

/** The first Python on PATH that can import torch and numpy, or null (those tests then skip). */
export function python() {
  for (const exe of ["python3", "python"]) {
    try {
      execFileSync(exe, ["-c", "import torch, numpy"], { stdio: "ignore" });
      return exe;
    } catch { /* try the next */ }
  }
  return null;
}
