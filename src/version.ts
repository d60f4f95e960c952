// The bundler (webpack via @jupyterlab/builder) inlines package.json.
declare function require(path: string): any;

/** The version of the jupyterlab-nbscale extension. */
export const EXTENSION_VERSION: string = require('../package.json').version;
