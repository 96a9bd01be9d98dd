// ESLint flat config for the web UI's JavaScript (services/api/static/js); vendored uPlot is not ours.
// Run with `make lint` (or `npx eslint .` after `npm ci`).
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", ".venv/", "services/api/static/vendor/", "bench/", "test-output/"] },
  js.configs.recommended,
  {
    files: ["services/api/static/js/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser, uPlot: "readonly" },
    },
    rules: {
      "max-len": ["error", { code: 110 }],
      "no-unused-vars": ["error", { args: "after-used" }],
      eqeqeq: ["error", "smart"],
      "prefer-const": "error",
      "no-var": "error",
    },
  },
  {
    files: ["eslint.config.mjs"],
    languageOptions: { sourceType: "module" },
  },
];
