/**
 * The `nbscale` client library: what cells and Node scripts import.
 */
export { display, newDisplay, DisplayHandle, type MimeBundle } from "./display";
export { VERSION } from "../version";
export * from "./history";
