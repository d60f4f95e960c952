// The extension's configuration (../.eslintrc.js), applied to the kernel. Three rules
// follow the kernel's own style instead of JupyterLab's: double quotes and a
// 160-column line (kernel/.prettierrc.json), interfaces named without an `I`
// prefix (a Node package's convention), and `if (x) return y;` on one line
// allowed (a body on a line of its own still needs braces).
const extension = require('../.eslintrc.js');

module.exports = {
  ...extension,
  root: true,
  parserOptions: { ecmaVersion: 2022, sourceType: 'module' },
  env: { es2022: true, node: true },
  rules: {
    ...extension.rules,
    '@typescript-eslint/naming-convention': 'off',
    '@typescript-eslint/quotes': 'off',
    curly: ['error', 'multi-line']
  },
  overrides: []
};
