// Copy the front-end packages the pages need from node_modules/ into the Python package
// (src/emoar/web/static/vendor/), so the server hands them out itself and nothing is fetched
// from a CDN at run time. Run after `npm ci`:  cd web && npm ci --ignore-scripts && npm run vendor
//
// Writes static/vendor/manifest.json last (package versions + every copied file); the server
// checks it to tell the user on the page when the vendored files are missing.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const dest = join(here, "..", "src", "emoar", "web", "static", "vendor");

// [npm package, destination folder under vendor/, files (null = every file but the skipped ones)]
const PLAN = [
  ["onnxruntime-web", "onnxruntime-web", [
    "dist/ort.wasm.min.js",                // UMD build, global `ort`, wasm (CPU) backend only
    "dist/ort-wasm-simd-threaded.mjs",     // wasm loader, imported at run time from wasmPaths
    "dist/ort-wasm-simd-threaded.wasm",
    "LICENSE",
  ]],
  ["@mediapipe/face_detection", "mediapipe/face_detection", null],
  ["@mediapipe/face_mesh", "mediapipe/face_mesh", null],
  ["swagger-ui-dist", "swagger-ui", ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"]],
];
const SKIP = new Set(["README.md", "index.d.ts", "package.json"]);

function packageVersion(name) {
  return JSON.parse(readFileSync(join(modules, name, "package.json"), "utf8")).version;
}

if (!existsSync(modules)) {
  console.error(`vendor: ${modules} is missing; run 'npm ci --ignore-scripts' in ${here} first`);
  process.exit(1);
}
rmSync(dest, { recursive: true, force: true });
mkdirSync(dest, { recursive: true });
const manifest = { generated_by: "web/vendor.mjs", packages: {}, files: [] };
let bytes = 0;
for (const [pkg, folder, files] of PLAN) {
  const src = join(modules, pkg);
  const list = files ?? readdirSync(src).filter((f) => !SKIP.has(f) && statSync(join(src, f)).isFile());
  for (const file of list) {
    const from = join(src, file);
    if (!existsSync(from)) {
      if (file === "LICENSE" || file === "NOTICE") continue;  // not every package ships one
      console.error(`vendor: ${pkg} has no ${file}; is package-lock.json in sync with package.json?`);
      process.exit(1);
    }
    const to = join(dest, folder, file.split("/").pop());
    mkdirSync(dirname(to), { recursive: true });
    cpSync(from, to);
    bytes += statSync(to).size;
    manifest.files.push(relative(dest, to).split("\\").join("/"));
  }
  manifest.packages[pkg] = packageVersion(pkg);
}
writeFileSync(join(dest, "manifest.json"), JSON.stringify(manifest, null, 1) + "\n");
console.log(`vendor: ${manifest.files.length} files (${(bytes / 1e6).toFixed(1)} MB) -> ${relative(process.cwd(), dest)}`);
