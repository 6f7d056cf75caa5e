// Lint keeps the execution contexts apart: no Node built-ins or non-deterministic layers in core/
// and workflows/, no floating promises, type-only imports where only types cross.
import tseslint from "typescript-eslint";

// The folders whose code runs on Node, outside workflows: neither core/ nor workflows/ may import them.
const NODE_SIDE = [
  "**/activities/**",
  "**/client/**",
  "**/cli/**",
  "**/dev/**",
  "**/streaming/**",
  "**/replay/**",
  "**/worker/**",
  "**/connectors/**",
  "**/security/**",
  "**/monitoring/**",
];

const NODE_BUILTINS = [
  "node:*",
  "fs",
  "fs/*",
  "path",
  "os",
  "child_process",
  "crypto",
  "http",
  "https",
  "net",
  "url",
  "util",
  "events",
  "stream",
  "worker_threads",
];

export default tseslint.config(
  { ignores: ["node_modules/**", ".tools/**", ".sage/**", "dist/**", "bench/results/**", "test/replay/**/*.json"] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ["*.js", "bin/*.js", "activities/stage/*.mjs", "security/*.cjs", "scripts/*.mjs"] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["test", "it", "describe", "suite", "before", "after"] }] },
      ],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/require-await": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/restrict-template-expressions": "off",
      "@typescript-eslint/no-base-to-string": "off",
      "@typescript-eslint/only-throw-error": "off",
      "@typescript-eslint/prefer-promise-reject-errors": "off",
    },
  },
  {
    files: ["core/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: NODE_BUILTINS, message: "core/ is pure: it is imported by workflows, which may not touch Node." },
            {
              group: [...NODE_SIDE, "**/workflows/**", "@temporalio/*"],
              message: "core/ depends on nothing but itself.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["workflows/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: NODE_BUILTINS, message: "workflows must be deterministic: no Node built-ins." },
            {
              group: [...NODE_SIDE, "@temporalio/activity", "@temporalio/worker", "@temporalio/client"],
              message: "workflows import only core/ and @temporalio/workflow; user code runs in activities.",
            },
          ],
        },
      ],
    },
  },
  { files: ["**/*.js"], ...tseslint.configs.disableTypeChecked },
);
