/**
 * The `nbscale` client library: what cells and Node scripts import.
 */
export { display, newDisplay, DisplayHandle, type MimeBundle } from "./display";
export { VERSION } from "../version";
export * from "./history";
export { Lazy, isLazy, type LazyRef } from "./lazy";
export { flow, step } from "../flow/api";
export type { Flow, Ref, StepHandle, StepOptions, ForeachOptions, StepSettings } from "../flow/api";
