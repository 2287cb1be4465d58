// @ts-check
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      'schemas/generated/**',
      'tmp/**',
      'bench/results/**',
      'eslint.config.js',
      'bin/**',
      'host-emulators/bin/**',
      'services/*/bin/**',
      'bench/lib/*.mjs',
      'scripts/*.mjs',
      '**/dist/**',
    ],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The migration core is pure: no I/O, no clock, no randomness, no infrastructure.
    files: ['packages/domain/src/**/*.ts'],
    ignores: ['packages/domain/src/**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', '@nats-io/*', 'execa', 'pino', 'fast-xml-parser', 'ajv', 'ajv-formats'],
              message: 'the domain core does no I/O',
            },
            {
              group: ['@haul/*', '!@haul/schemas'],
              message: 'the domain core depends on nothing but schema types',
            },
            {
              group: ['@haul/schemas'],
              allowTypeImports: true,
              message: 'only type imports of the generated message types',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        'setTimeout',
        'setInterval',
        'process',
        'fetch',
        'performance',
        'crypto',
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'randomness comes in through inputs' },
        { object: 'Date', property: 'now', message: 'time comes in through inputs' },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: 'time comes in through inputs',
        },
      ],
    },
  },
  {
    // The web view's page: plain browser JavaScript, no TypeScript project (see packages/cli/src/web-page.ts).
    files: ['packages/cli/web/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
  prettier,
);
