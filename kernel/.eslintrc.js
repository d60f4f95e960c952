// The extension's rule set (../.eslintrc.js), applied to the kernel. Three rules
// follow the kernel's own style instead of JupyterLab's: double quotes and a
// 160-column line (kernel/.prettierrc.json), interfaces named without an `I`
// prefix (a Node package's convention), and `if (x) return y;` on one line
// allowed (a body on a line of its own still needs braces).
module.exports = {
  root: true,
  extends: [
    'eslint:recommended',
    'plugin:@typescript-eslint/eslint-recommended',
    'plugin:@typescript-eslint/recommended',
    'plugin:prettier/recommended'
  ],
  parser: '@typescript-eslint/parser',
  parserOptions: { ecmaVersion: 2022, sourceType: 'module' },
  env: { es2022: true, node: true },
  plugins: ['@typescript-eslint'],
  rules: {
    '@typescript-eslint/no-unused-vars': ['warn', { args: 'none' }],
    '@typescript-eslint/no-explicit-any': 'off',
    '@typescript-eslint/no-namespace': 'off',
    '@typescript-eslint/no-use-before-define': 'off',
    curly: ['error', 'multi-line'],
    eqeqeq: 'error',
    'prefer-arrow-callback': 'error'
  }
};
