const jestJupyterLab = require('@jupyterlab/testutils/lib/jest-config');

const esModules = [
  '@codemirror',
  '@jupyter/ydoc',
  '@jupyter/react-components',
  '@jupyter/web-components',
  '@jupyterlab/',
  '@microsoft',
  'exenv-es6',
  'lib0',
  'nanoid',
  'vscode-ws-jsonrpc',
  'y-protocols',
  'y-websocket',
  'yjs'
].join('|');

const baseConfig = jestJupyterLab(__dirname);

module.exports = {
  ...baseConfig,
  automock: false,
  collectCoverageFrom: [
    'src/**/*.{ts,tsx}',
    '!src/**/*.d.ts',
    '!src/**/.ipynb_checkpoints/*'
  ],
  coverageReporters: ['lcov', 'text'],
  transform: {
    ...baseConfig.transform,
    // The kernel's sources (compiled by the kernel's own tsconfig) are
    // imported by one test to check that both %%step parsers agree; only
    // the frontend's files are type-checked here.
    '^.+\\.tsx?$': [
      'ts-jest/legacy',
      {
        tsconfig: './tsconfig.test.json',
        diagnostics: { exclude: ['**/kernel/**'] }
      }
    ]
  },
  reporters: ['default'],
  roots: ['<rootDir>/src'],
  testRegex: 'src/.*/.*.spec.ts[x]?$',
  transformIgnorePatterns: [`/node_modules/(?!${esModules}).+`]
};
